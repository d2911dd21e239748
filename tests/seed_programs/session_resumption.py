import asyncio
from google import genai
from google.genai import types

client = genai.Client(api_key="YOUR_GEMINI_API_KEY")
model_name = "gemini-2.0-flash-live-001"
previous_session_handle = None # Store this persistently for actual resumption

async def resumable_interaction():
    global previous_session_handle
    print(f"Attempting to connect/resume with handle: {previous_session_handle}")
    
    current_config = types.LiveConnectConfig(
        response_modalities=["TEXT"], # Or AUDIO
        session_resumption=types.SessionResumptionConfig(
            handle=previous_session_handle # Pass None for new session
        ),
    )

    async with client.aio.live.connect(model=model_name, config=current_config) as session:
        print("Session active.")
        # Example: send a message and wait for resumption update
        await session.send_client_content(
            turns=[types.Content(role="user", parts=[types.Part(text="Hello world!")])],
            turn_complete=True
        )
        
        async for message in session.receive():
            if message.text:
                print(f"Model: {message.text}")

            if message.session_resumption_update:
                update = message.session_resumption_update
                if update.resumable and update.new_handle:
                    previous_session_handle = update.new_handle
                    print(f"Received new session handle: {previous_session_handle}")
                    # Persist this handle for future resumption
            
            if message.server_content and message.server_content.generation_complete:
                print("Turn complete.")
                # For this example, we'll break after one interaction to show handle update
                # In a real app, you'd continue the interaction loop
                if message.session_resumption_update and message.session_resumption_update.new_handle:
                    break # Break if we got a new handle in this message
                elif not message.session_resumption_update: # If no handle update, break anyway for example
                    break


if __name__ == "__main__":
    # Simulate running it multiple times to test resumption
    # In a real app, previous_session_handle would be stored persistently
    asyncio.run(resumable_interaction())
    print(f"After first run, handle is: {previous_session_handle}")
    # asyncio.run(resumable_interaction()) # Second run would use the handle
    # print(f"After second run, handle is: {previous_session_handle}")
