"""Run by test_ddp under torchrun: the real `cnnlab train classify` CLI, plus each replica's
final weights written to OUT/rank{r}.safetensors so the test can compare them."""

import sys

from safetensors.torch import save_file

from cnnlab.engine import trainer as trainer_module

out = sys.argv[1]
_fit = trainer_module.Trainer.fit


def fit_and_dump(self):
    result = _fit(self)
    state = {k: v.detach().contiguous().clone() for k, v in self.model.state_dict().items()}
    save_file(state, f"{out}/rank{self.dist.rank}.safetensors")
    return result


trainer_module.Trainer.fit = fit_and_dump

from cnnlab.cli.main import main  # noqa: E402

sys.exit(main(["train", "classify", "--data", "digits", "--limit", "400", "--limit-test", "100", "--model", "convnet_bn",
               "--model-arg", "width=8", "--epochs", "6", "--batch-size", "16", "--augment", "crop=2",
               "--threads", "1", "--quiet", "--no-tensorboard", "--out", f"{out}/run"]))
