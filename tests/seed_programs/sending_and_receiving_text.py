import asyncio

from google import genai

client = genai.Client(api_key="YOUR_GEMINI_API_KEY")
model_name = "gemini-2.0-flash-live-001"
config = {"response_modalities": ["TEXT"]}

async def text_interaction():
    async with client.aio.live.connect(model=model_name, config=config) as session:
        message = "Hello, how are you?"
        print(f"User: {message}")
        await session.send_client_content(
            turns={"role": "user", "parts": [{"text": message}]},
            turn_complete=True  # Indicates this is a complete turn
        )

        print("Gemini: ", end="")
        async for response in session.receive():
            if response.text is not None:
                print(response.text, end="")
            if response.server_content and response.server_content.generation_complete:
                print("\nGeneration complete.")
                break # Exit loop once generation is complete for this turn
        print("\nSession ended.")

if __name__ == "__main__":
    asyncio.run(text_interaction())
