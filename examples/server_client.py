"""Talk to `wrenlm serve` with the official openai client (pip install "wrenlm[server]" openai).

    wrenlm serve --model chat=SmolLM2-135M-Instruct.Q4_1.gguf --embedding-model mini=all-MiniLM-L6-v2/
    python examples/server_client.py
"""

from openai import OpenAI

client = OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="unused")  # the server's --api-key, if it has one
print([m.id for m in client.models.list()])

stream = client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "Name three rivers."}],
                                        max_tokens=64, temperature=0, stream=True)
for chunk in stream:
    if chunk.choices:
        print(chunk.choices[0].delta.content or "", end="", flush=True)
print()

if "mini" in [m.id for m in client.models.list()]:
    vectors = client.embeddings.create(model="mini", input=["a doc", "another doc"])
    print(len(vectors.data), "embeddings of", len(vectors.data[0].embedding), "dimensions")
