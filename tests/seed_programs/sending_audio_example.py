import asyncio
import io
from pathlib import Path
from google import genai
from google.genai import types
import soundfile as sf # pip install soundfile
import librosa # pip install librosa

client = genai.Client(api_key="YOUR_GEMINI_API_KEY")
model_name = "gemini-2.0-flash-live-001"
# For audio input, the model can still respond with text if configured
config = {"response_modalities": ["TEXT"]}

# Ensure you have a sample.wav file or replace with your audio file
# A 16kHz mono WAV file is ideal to minimize conversion
AUDIO_FILE_PATH = "sample.wav" # Create or replace with your WAV file path

async def send_audio_input():
    if not Path(AUDIO_FILE_PATH).exists():
        print(f"Audio file not found: {AUDIO_FILE_PATH}")
        # Create a dummy silent WAV file for testing if it doesn't exist
        dummy_sr = 16000
        dummy_duration = 1 # seconds
        dummy_data = librosa.tone(frequency=1, sr=dummy_sr, duration=dummy_duration) * 0 # silent
        sf.write(AUDIO_FILE_PATH, dummy_data, dummy_sr)
        print(f"Created a dummy silent WAV file: {AUDIO_FILE_PATH}")


    async with client.aio.live.connect(model=model_name, config=config) as session:
        buffer = io.BytesIO()
        # Load audio, resample to 16kHz if necessary
        y, sr = librosa.load(AUDIO_FILE_PATH, sr=16000, mono=True)
        # Write as RAW PCM 16-bit
        sf.write(buffer, y, sr, format='RAW', subtype='PCM_16')
        buffer.seek(0)
        audio_bytes = buffer.read()

        print("Sending audio input...")
        # If using automatic VAD (default), just send audio
        # If manual VAD, send activity_start first
        # await session.send_realtime_input(activity_start=types.ActivityStart()) # If manual VAD
        await session.send_realtime_input(
            audio=types.Blob(data=audio_bytes, mime_type="audio/pcm;rate=16000")
        )
        # If manual VAD, send activity_end after audio
        # await session.send_realtime_input(activity_end=types.ActivityEnd()) # If manual VAD

        print("Receiving response...")
        async for response in session.receive():
            if response.text is not None:
                print(f"Model Text Response: {response.text}")
            if response.server_content and response.server_content.generation_complete:
                print("Generation complete.")
                break
        print("Audio sending example finished.")

if __name__ == "__main__":
    asyncio.run(send_audio_input())
