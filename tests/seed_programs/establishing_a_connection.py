import asyncio

from google import genai

# Replace with your actual API key
GEMINI_API_KEY = "YOUR_GEMINI_API_KEY"

client = genai.Client(api_key=GEMINI_API_KEY)
model_name = "gemini-2.0-flash-live-001" # Or a native audio model

# Configuration: Specify response modality (TEXT or AUDIO, not both)
config = {"response_modalities": ["TEXT"]} # For text responses

async def main():
    try:
        async with client.aio.live.connect(model=model_name, config=config) as session:
            print("Session started successfully.")
            # Further interaction logic here
            # For example, sending a message:
            # await session.send_client_content(
            #     turns={"role": "user", "parts": [{"text": "Hello, Gemini!"}]},
            #     turn_complete=True
            # )
            # async for response in session.receive():
            #     if response.text is not None:
            #         print(response.text, end="")
    except Exception as e:
        print(f"An error occurred: {e}")

if __name__ == "__main__":
    asyncio.run(main())
