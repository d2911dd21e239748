import asyncio
import wave
from google import genai
from google.genai import types

client = genai.Client(api_key="YOUR_GEMINI_API_KEY")
# Use a model that supports native audio output for better quality if available
model_name = "gemini-2.5-flash-preview-native-audio-dialog" # or "gemini-2.0-flash-live-001"
config = {"response_modalities": ["AUDIO"]} # Configure for audio response

OUTPUT_WAV_FILE = "received_audio.wav"

async def receive_audio_output():
    async with client.aio.live.connect(model=model_name, config=config) as session:
        message = "Tell me a short story."
        print(f"User (text input): {message}")
        await session.send_client_content(
            turns={"role": "user", "parts": [{"text": message}]},
            turn_complete=True
        )

        print(f"Receiving audio response, saving to {OUTPUT_WAV_FILE}...")
        with wave.open(OUTPUT_WAV_FILE, "wb") as wf:
            wf.setnchannels(1)  # Mono
            wf.setsampwidth(2)  # 16-bit PCM
            wf.setframerate(24000)  # Output audio is 24kHz

            async for response in session.receive():
                if response.data is not None: # response.data contains audio bytes
                    wf.writeframes(response.data)
                # You can also check for output_transcription if enabled
                if response.server_content and response.server_content.output_transcription:
                    print(f"Live Transcript: {response.server_content.output_transcription.text}")
                if response.server_content and response.server_content.generation_complete:
                    print("Audio generation complete.")
                    break
        print(f"Audio saved to {OUTPUT_WAV_FILE}")

if __name__ == "__main__":
    asyncio.run(receive_audio_output())
