"""Hub round trip: a checkpoint saved by us loads with every Auto class, in-process without
``trust_remote_code``, and in a fresh process where this package cannot be imported with ``trust_remote_code``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from transformers import (
    AutoModel,
    AutoModelForMaskedLM,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
)

from modeling_nt import (
    NTConfig,
    NTForMaskedLM,
    NTForSequenceClassification,
    NTForTokenClassification,
    NTModel,
    tokenizer_for,
)
from modeling_nt.checkpoint import save_checkpoint
from modeling_nt.configuration_nt import AUTO_MAP

SEQUENCES = ["ACGTGTACNTGCACGGANCGACTAGTCTGA", "TAAAAAAGGC", "ATTCCGATTCCGATTCCGATTCCGATTCCG"]

#: Run in a fresh interpreter, from /, with this package made unimportable.
FRESH_PROCESS_SCRIPT = textwrap.dedent(
    """
    import json
    import sys
    sys.modules["modeling_nt"] = None  # the editable install would otherwise make it importable
    sys.modules["tokenization"] = None
    import torch
    from transformers import (AutoModel, AutoModelForMaskedLM, AutoModelForSequenceClassification,
                              AutoTokenizer)

    checkpoint, out, sequences = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    tokenizer = AutoTokenizer.from_pretrained(checkpoint, trust_remote_code=True)
    batch = tokenizer(sequences, padding=True, return_tensors="pt")
    mlm = AutoModelForMaskedLM.from_pretrained(checkpoint, trust_remote_code=True).eval()
    base = AutoModel.from_pretrained(checkpoint, trust_remote_code=True).eval()
    classifier = AutoModelForSequenceClassification.from_pretrained(
        checkpoint, trust_remote_code=True, num_labels=3
    ).eval()
    with torch.no_grad():
        result = {
            "input_ids": batch["input_ids"],
            "mlm_logits": mlm(**batch).logits,
            "base_hidden": base(**batch).last_hidden_state,
            "classifier_logits": classifier(**batch).logits,
            "classifier_weight": classifier.classifier.weight,
            "classifier_bias": classifier.classifier.bias,
            "modules": [type(model).__module__ for model in (mlm, base, classifier)],
        }
    torch.save(result, out)
    """
)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[NTForMaskedLM, Path]:
    torch.manual_seed(0)
    model = NTForMaskedLM(NTConfig.from_preset("tiny")).eval()
    return model, save_checkpoint(model, tmp_path_factory.mktemp("ckpt") / "nt-tiny")


def test_saved_checkpoint_has_full_auto_map_code_and_tokenizer(checkpoint) -> None:
    _, path = checkpoint
    config = json.loads((path / "config.json").read_text())
    assert config["auto_map"] == AUTO_MAP
    assert config["model_type"] == "nucleotide_transformer"
    for name in ("model.safetensors", "configuration_nt.py", "modeling_nt.py", "tokenizer.json"):
        assert (path / name).is_file(), name
    source = (path / "modeling_nt.py").read_text()
    assert "from .configuration_nt import NTConfig" in source
    assert "import modeling_nt" not in source and "tokenization" not in source.split('"""', 2)[2]


def test_in_process_loading_needs_no_trust_remote_code(checkpoint) -> None:
    model, path = checkpoint
    expected_classes = {
        AutoModel: NTModel,
        AutoModelForMaskedLM: NTForMaskedLM,
        AutoModelForSequenceClassification: NTForSequenceClassification,
        AutoModelForTokenClassification: NTForTokenClassification,
    }
    for auto_class, model_class in expected_classes.items():
        assert type(auto_class.from_pretrained(path)) is model_class
    batch = tokenizer_for(model.config)(SEQUENCES, padding=True, return_tensors="pt")
    reloaded = AutoModelForMaskedLM.from_pretrained(path).eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**batch).logits, model(**batch).logits)


def test_fresh_process_loads_mlm_base_and_classifier_with_remote_code(checkpoint, tmp_path: Path) -> None:
    model, path = checkpoint
    out = tmp_path / "outputs.pt"
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env |= {"HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules")}
    completed = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS_SCRIPT, str(path), str(out), json.dumps(SEQUENCES)],
        cwd="/",
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = torch.load(out)
    assert all(module.startswith("transformers_modules.") for module in result["modules"]), result["modules"]

    batch = tokenizer_for(model.config)(SEQUENCES, padding=True, return_tensors="pt")
    assert torch.equal(result["input_ids"], batch["input_ids"])
    with torch.no_grad():
        outputs = model(**batch, output_hidden_states=True)
    last_hidden = outputs.hidden_states[-1]
    torch.testing.assert_close(result["mlm_logits"], outputs.logits)
    torch.testing.assert_close(result["base_hidden"], last_hidden)
    expected_classifier = last_hidden[:, 0] @ result["classifier_weight"].T + result["classifier_bias"]
    torch.testing.assert_close(result["classifier_logits"], expected_classifier)
