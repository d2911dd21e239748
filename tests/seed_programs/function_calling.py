import asyncio
from google import genai
from google.genai import types

client = genai.Client(api_key="YOUR_GEMINI_API_KEY")
model_name = "gemini-2.0-flash-live-001" # Ensure model supports function calling

# Simple function definitions
turn_on_the_lights_fn = {"name": "turn_on_the_lights"}
turn_off_the_lights_fn = {"name": "turn_off_the_lights"}
tools_config = [{"function_declarations": [turn_on_the_lights_fn, turn_off_the_lights_fn]}]

config = {"response_modalities": ["TEXT"], "tools": tools_config}

async def function_calling_example():
    async with client.aio.live.connect(model=model_name, config=config) as session:
        prompt = "Turn on the lights please"
        print(f"User: {prompt}")
        await session.send_client_content(turns=[{"role": "user", "parts": [{"text": prompt}]}], turn_complete=True)

        async for chunk in session.receive():
            if chunk.server_content and chunk.text is not None:
                print(f"Model: {chunk.text}")
            elif chunk.tool_call:
                print(f"Tool call received: {chunk.tool_call.function_calls}")
                function_responses = []
                for fc in chunk.tool_call.function_calls:
                    # Simulate function execution
                    print(f"Executing function: {fc.name} with ID: {fc.id}")
                    # Replace with actual function logic
                    result = {"status": "ok", "action": f"{fc.name} executed"}
                    
                    function_response = types.FunctionResponse(
                        id=fc.id, # Use the ID from the tool_call
                        name=fc.name,
                        response=result # Actual response from your function
                    )
                    function_responses.append(function_response)
                
                print(f"Sending tool responses: {function_responses}")
                await session.send_tool_response(function_responses=function_responses)
            
            if chunk.server_content and chunk.server_content.generation_complete:
                print("Generation complete for this turn.")
                # Potentially break or wait for next user input
                break # For this example, end after one interaction

if __name__ == "__main__":
    asyncio.run(function_calling_example())
