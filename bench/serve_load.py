#!/usr/bin/env python3
"""Load on an OpenAI-compatible server (issue 23, item 6): C concurrent clients send audit-shaped
requests (max_tokens 1, logprobs 20, temperature 0) for S seconds; prints requests/s, prompt
tokens/s (from `usage`), p50/p99 latency and errors as one JSON line per concurrency.

    python3 bench/serve_load.py --url http://127.0.0.1:8000/v1 --model NAME \
        --prompts prompts.jsonl --concurrency 1,8,64 --seconds 60

`--prompts`: a JSON-lines file with a "text" field per line (the texts as sent); without it,
one fixed raw prompt. Standard library only."""
import argparse, json, threading, time, urllib.request, urllib.error


def one(url, body, timeout):
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def run(url, model, texts, clients, seconds, timeout):
    lat, errors, tokens = [], [0], [0]
    lock = threading.Lock()
    stop = time.monotonic() + seconds
    counter = [0]

    def client():
        while time.monotonic() < stop:
            with lock:
                i = counter[0]
                counter[0] += 1
            body = json.dumps({"model": model, "prompt": texts[i % len(texts)], "max_tokens": 1,
                               "logprobs": 20, "temperature": 0, "seed": i}).encode()
            t0 = time.monotonic()
            try:
                v = one(url, body, timeout)
                dt = time.monotonic() - t0
                with lock:
                    lat.append(dt)
                    tokens[0] += v.get("usage", {}).get("prompt_tokens", 0)
            except (urllib.error.URLError, OSError, ValueError):
                with lock:
                    errors[0] += 1

    t0 = time.monotonic()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - t0
    lat.sort()
    q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] if lat else None
    return {"concurrency": clients, "seconds": round(wall, 1), "requests": len(lat),
            "requests_per_s": round(len(lat) / wall, 2), "prompt_tokens_per_s": round(tokens[0] / wall, 1),
            "p50_ms": q(0.5) and round(1000 * q(0.5), 1), "p99_ms": q(0.99) and round(1000 * q(0.99), 1),
            "errors": errors[0]}


def main():
    a = argparse.ArgumentParser()
    a.add_argument("--url", required=True)
    a.add_argument("--model", required=True)
    a.add_argument("--prompts")
    a.add_argument("--concurrency", default="1,8,64")
    a.add_argument("--seconds", type=float, default=60)
    a.add_argument("--timeout", type=float, default=600)
    o = a.parse_args()
    texts = ["Input: Would a user who liked Toy Story like Heat? Answer Yes or No.\nOutput:"]
    if o.prompts:
        texts = [json.loads(l)["text"] for l in open(o.prompts) if l.strip()]
    url = o.url.rstrip("/") + "/completions"
    for c in [int(x) for x in o.concurrency.split(",")]:
        print(json.dumps(run(url, o.model, texts, c, o.seconds, o.timeout)), flush=True)


if __name__ == "__main__":
    main()
