"""Reference P(Yes) for `fairrec score` on SmolLM2-135M-Instruct (GGUF), computed
independently with Hugging Face transformers (which dequantizes the same GGUF file with
the `gguf` package and builds its own tokenizer from the GGUF metadata).

    python -m venv env && env/bin/pip install torch transformers gguf
    env/bin/python make_score_reference.py ../../../../../shared/models > score_reference.json

P(Yes) = softmax over the logits of the first token of "Yes" and "No" at the position after
the prompt. With the chat template the answer has no leading space; with the raw prompt
`Input: {prompt}\nOutput:` it has one (" Yes" / " No"), as in fairrec's `AnswerSpace::Auto`.
"""
import json
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

MODELS = sys.argv[1] if len(sys.argv) > 1 else "../shared/models"
DIR = f"{MODELS}/smollm2-135m-instruct"
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

PROMPTS = [
    "Is Paris the capital of France? Answer Yes or No.",
    "Is the sun cold? Answer Yes or No.",
    "Given the user's preference and unpreference, identify whether the user will like the "
    "target movie by answering \"Yes.\" or \"No.\".\nUser Preference: \"Toy Story (1995)\", "
    "\"Fargo (1996)\"\nUser Unpreference: \"Heat (1995)\"\nWhether the user will like the "
    "target movie \"Star Wars (1977)\"?",
    "Note that the user is a female. Would she enjoy \"Titanic (1997)\"?",
]

tok = AutoTokenizer.from_pretrained(DIR, gguf_file=GGUF)
model = AutoModelForCausalLM.from_pretrained(DIR, gguf_file=GGUF, torch_dtype=torch.float32)
model.eval()

out = []
for chat in (True, False):
    for prompt in PROMPTS:
        if chat:
            text = tok.apply_chat_template(
                [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
            )
            yes, no = "Yes", "No"
        else:
            text = f"Input: {prompt}\nOutput:"
            yes, no = " Yes", " No"
        ids = tok(text, add_special_tokens=False)["input_ids"]
        y = tok(yes, add_special_tokens=False)["input_ids"][0]
        n = tok(no, add_special_tokens=False)["input_ids"][0]
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0, -1].double()
        two = torch.stack([logits[y], logits[n]])
        p = torch.softmax(two, 0)[0].item()
        out.append(
            {
                "prompt": prompt,
                "chat": chat,
                "n_tokens": len(ids),
                "ids": ids,
                "yes_token": y,
                "no_token": n,
                "logit_yes": logits[y].item(),
                "logit_no": logits[n].item(),
                "p_yes": p,
            }
        )
json.dump(
    {
        "model": f"smollm2-135m-instruct/{GGUF}",
        "made_by": "make_score_reference.py with torch "
        + torch.__version__
        + ", transformers "
        + __import__("transformers").__version__,
        "cases": out,
    },
    sys.stdout,
    indent=1,
)
print()
