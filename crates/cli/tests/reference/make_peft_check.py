"""P(Yes) of fairrec-trained adapters as Python peft computes it (run by make_peft_check.sh).

    python make_peft_check.py GGUF ADAPTERS_DIR > peft_check.json

Loads the GGUF in transformers (dequantized to float32, its tokenizer from the GGUF
metadata), applies each adapter of ADAPTERS_DIR (lora/, prompt/) with
`PeftModel.from_pretrained`, and scores each prompt with the chat template: P(Yes) =
softmax over the logits of "Yes" and "No" at the position after the prompt, as in
make_score_reference.py.
"""
import hashlib
import json
import os
import sys

import peft
import torch
import transformers
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

GGUF, ADAPTERS = sys.argv[1], sys.argv[2]
DIR, FILE = os.path.dirname(GGUF), os.path.basename(GGUF)
PROMPTS = [
    "Is Paris the capital of France? Answer Yes or No.",
    "Note that the user is a female. Would she enjoy \"Titanic (1997)\"?",
    "Given the user's preference and unpreference, identify whether the user will like the "
    "target movie by answering \"Yes.\" or \"No.\".\nUser Preference: \"Toy Story (1995)\", "
    "\"Fargo (1996)\"\nUser Unpreference: \"Heat (1995)\"\nWhether the user will like the "
    "target movie \"Star Wars (1977)\"?",
]

tok = AutoTokenizer.from_pretrained(DIR, gguf_file=FILE)
yes = tok("Yes", add_special_tokens=False)["input_ids"][0]
no = tok("No", add_special_tokens=False)["input_ids"][0]
out = {
    "made_by": "make_peft_check.py with torch %s, transformers %s, peft %s"
    % (torch.__version__, transformers.__version__, peft.__version__),
    "adapters": {},
}
for kind in sorted(os.listdir(ADAPTERS)):
    adir = os.path.join(ADAPTERS, kind)
    sha = {}
    for f in sorted(os.listdir(adir)):
        with open(os.path.join(adir, f), "rb") as fh:
            sha[f] = hashlib.sha256(fh.read()).hexdigest()
    base = AutoModelForCausalLM.from_pretrained(DIR, gguf_file=FILE, torch_dtype=torch.float32)
    model = PeftModel.from_pretrained(base, adir).eval()
    cases = []
    for prompt in PROMPTS:
        text = tok.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )
        ids = tok(text, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids])).logits[0, -1].double()
        two = torch.stack([logits[yes], logits[no]])
        cases.append({
            "prompt": prompt,
            "ids": ids,
            "yes_token": yes,
            "no_token": no,
            "p_yes": torch.softmax(two, 0)[0].item(),
            "logit_yes": logits[yes].item(),
            "logit_no": logits[no].item(),
        })
    out["adapters"][kind] = {
        "peft_type": str(model.peft_config["default"].peft_type),
        "sha256": sha,
        "cases": cases,
    }
print(json.dumps(out, indent=1))
