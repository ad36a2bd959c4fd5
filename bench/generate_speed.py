#!/usr/bin/env python3
"""Generation speed of an OpenAI-compatible server (benchmark, not a test).

Sends FaiRLLM-style list instructions to /v1/chat/completions (greedy, `max_tokens`
tokens) first one at a time, then `--clients` at once, and prints the completion
tokens per second of each phase as one JSON line.

    fairrec serve --model SmolLM2-135M-Instruct.Q4_1.gguf --port 8311 &
    python3 bench/generate_speed.py --url http://127.0.0.1:8311/v1 --max-tokens 250

Only the standard library is used.
"""
import argparse
import json
import platform
import threading
import time
import urllib.request

SEEDS = ["Star Wars (1977)", "Fargo (1996)", "Contact (1997)", "Toy Story (1995)",
         "Return of the Jedi (1983)", "Liar Liar (1997)", "Scream (1996)", "Air Force One (1997)"]


def ask(url, model, seed, max_tokens):
    body = {
        "model": model, "temperature": 0, "max_tokens": max_tokens, "seed": 0,
        "messages": [
            {"role": "system", "content": "You are a movie recommendation system."},
            {"role": "user", "content": f'I am a fan of the movie "{seed}". Please provide me with a list of 20 movie titles in order of preference that you think I might like. Please do not provide any additional information about the movies, such as artist, genre, or release date.'},
        ],
    }
    rq = urllib.request.Request(url + "/chat/completions", json.dumps(body).encode(),
                                {"Content-Type": "application/json"})
    with urllib.request.urlopen(rq, timeout=3600) as r:
        return json.load(r)["usage"]["completion_tokens"]


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--model", default="")
    ap.add_argument("--max-tokens", type=int, default=250)
    ap.add_argument("--single", type=int, default=2, help="requests sent one at a time")
    ap.add_argument("--clients", type=int, default=8, help="requests sent at once")
    a = ap.parse_args()
    model = a.model or json.load(urllib.request.urlopen(a.url + "/models"))["data"][0]["id"]
    t0, tokens = time.time(), 0
    for i in range(a.single):
        tokens += ask(a.url, model, SEEDS[i % len(SEEDS)], a.max_tokens)
    single = {"requests": a.single, "tokens": tokens, "seconds": round(time.time() - t0, 2)}
    results = [0] * a.clients

    def one(i):
        results[i] = ask(a.url, model, SEEDS[i % len(SEEDS)], a.max_tokens)

    t0 = time.time()
    threads = [threading.Thread(target=one, args=(i,)) for i in range(a.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    together = {"requests": a.clients, "tokens": sum(results), "seconds": round(time.time() - t0, 2)}
    for phase in (single, together):
        phase["tokens_per_s"] = round(phase["tokens"] / phase["seconds"], 1)
    print(json.dumps({"cpu": cpu_model(), "model": model, "max_tokens": a.max_tokens,
                      "one_at_a_time": single, "concurrent": together}))


if __name__ == "__main__":
    main()
