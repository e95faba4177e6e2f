"""Write a Hugging Face model folder (safetensors, config, tokenizer with its
chat template) from a GGUF, through transformers' GGUF loader, which
dequantizes the weights. For the PyTorch side of scripts/bench-train.sh: the
same base weights our trainer dequantizes.

    python gguf_to_hf.py model.gguf out_dir
"""
import os
import sys
import time

from transformers import AutoModelForCausalLM, AutoTokenizer

gguf, out = sys.argv[1], sys.argv[2]
folder, name = os.path.split(os.path.abspath(gguf))
t = time.time()
tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)
# the weights are plain floats by now; transformers still marks the model as
# GGUF-quantized and refuses to save it unless the mark is dropped
model.hf_quantizer = None
if hasattr(model.config, "quantization_config"):
    del model.config.quantization_config
model.save_pretrained(out)
tok.save_pretrained(out)
print(f"{out}: {type(model).__name__} from {name} in {time.time() - t:.0f} s", file=sys.stderr)
