"""The original model and the retrained references, trained once and cached.

Every model's store key is derived from all that determines it: the data
fingerprint, the split seed and indices, the recipe, the model seed and the
engine's precision.
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from data import ImageData, Splits, SplitTensors
from training.engine import train_models
from training.model import empty_model
from training.precision import choose_precision
from training.recipe import TrainRecipe

from .distributed import World
from .profiles import Profile
from .scoring import ModelScores, score_states
from .store import KEY_VERSION, CheckpointStore, CorruptCheckpoint, config_key

ORIGINAL_SEED_OFFSET = 0
RETRAINED_SEED_OFFSET = 1000  # reference i's model seed: 1000 + i
ORIGINALS_SEED_STEP = 100_000  # original k > 0 (--originals): split seed + 100,000 k, never a reference's seed
# Bump when the scores' inference path or content changes: every stored score is recomputed
# from its stored model (2: the retain and test margins KLOM reads).
SCORING_VERSION = 2
CUDA_GROUP_SIZE = 16  # references trained together on a GPU (benchmarks/RESULTS.md); one at a time on CPU


@dataclass
class Zoo:
    data: ImageData
    splits: Splits
    profile: Profile
    tensors: SplitTensors
    store: CheckpointStore
    progress: bool = True
    group_size: int | None = None  # references trained together (default: CUDA_GROUP_SIZE on CUDA, 1 on CPU)
    precision: str | None = None  # the engine's arithmetic (precision.py; default: chosen from the device)
    world: World = World()  # under torchrun: this process's rank and the number of ranks
    originals: int = 1  # K originals trained with different seeds (--originals); run i starts from i mod K
    # What a zoo holds in memory, never copied by dataclasses.replace: a replaced zoo starts as
    # a new process would, loading from the store.
    _originals: dict = field(default_factory=dict, init=False, repr=False)  # k -> (model, record): runs copy them
    _told_of_older: bool = field(default=False, init=False, repr=False)  # older models are named once per zoo
    _told_of_rescoring: bool = field(default=False, init=False, repr=False)  # so are older cached scores

    @property
    def device(self) -> torch.device:
        """Where its tensors, and so its models, live."""
        return self.tensors.retain[0].device

    def _group_size(self) -> int:
        if self.group_size:
            return self.group_size
        return CUDA_GROUP_SIZE if self.tensors.retain[0].is_cuda else 1  # on CPU grouping saves nothing

    def engine_precision(self) -> str:
        """The arithmetic its models are trained in: ``precision``, or the device's default."""
        return choose_precision(self.device, self.precision)

    def _config(self, role: str, recipe: TrainRecipe, indices: np.ndarray, seed: int) -> dict:
        return {
            "key_version": KEY_VERSION,
            # A GPU's and a CPU's models are two distributions (bf16 and fp32, other kernels):
            # a store filled by both must never mix them into one set of references.
            "device": self.device.type,
            "precision": self.engine_precision(),
            "role": role,
            "data": self.data.fingerprint(),
            "split_seed": self.splits.seed,
            "forget_hash": self.splits.forget_hash(),
            "train_indices": _indices_hash(np.sort(indices)),
            "recipe": recipe.to_json(),
            "model_seed": seed,
            "arch": "torchvision.resnet18",
            "num_classes": self.data.num_classes,
        }

    def original_config(self, k: int = 0) -> dict:
        """Original ``k``'s: the competition's one for k = 0, whose key no K changes."""
        indices = np.concatenate([self.splits.retain, self.splits.forget])
        seed = ORIGINAL_SEED_OFFSET + self.splits.seed + ORIGINALS_SEED_STEP * k
        return self._config("original", self.profile.original_recipe(), indices, seed)

    def original(self, k: int = 0) -> tuple[torch.nn.Module, dict]:
        """Original ``k``: a model trained on all training data (forget + retain); the missing ones
        among the zoo's ``originals`` are trained together on first use."""
        if k not in self._originals:
            wanted = sorted({k, *range(self.originals)})
            images = torch.cat([self.tensors.retain[0], self.tensors.forget[0]])
            labels = torch.cat([self.tensors.retain[1], self.tensors.forget[1]])
            configs = [self.original_config(i) for i in wanted]
            desc = "original model" if len(configs) == 1 else f"original models x{len(configs)}"
            if self.world.size > 1:  # one rank trains them, the others load them
                with self.world.together():
                    if self.world.is_main:
                        self._get_or_train(configs, images, labels, desc)
            self._originals |= dict(zip(wanted, self._get_or_train(configs, images, labels, desc)))
        return self._originals[k]

    def all_originals(self) -> list[torch.nn.Module]:
        """The zoo's ``originals`` models, original k at position k."""
        return [self.original(k)[0] for k in range(self.originals)]

    def retrained_config(self, index: int) -> dict:
        seed = RETRAINED_SEED_OFFSET + index
        return self._config("retrained", self.profile.retrain_recipe(), self.splits.retain, seed)

    def retrained(self, index: int) -> tuple[torch.nn.Module, dict]:
        """Reference ``index``: trained from scratch on the retain set only."""
        return self._get_or_train([self.retrained_config(index)], *self.tensors.retain, f"retrained {index}")[0]

    def has_retrained(self, indices) -> bool:
        """Whether the store holds every reference among ``indices`` (none is trained)."""
        return all(self.store.has(config_key(self.retrained_config(i))) for i in indices)

    def ensure_retrained(self, indices) -> None:
        """Train the missing references among ``indices``, ``group_size`` at a time; under
        torchrun each rank trains its share and all wait until every one is stored. (A stored
        but corrupt model is caught, and retrained, when it is loaded.)"""
        configs = map(self.retrained_config, self.world.shard(list(indices)))
        missing = [c for c in configs if not self.store.has(config_key(c))]
        size = self._group_size()
        groups = [missing[g : g + size] for g in range(0, len(missing), size)]
        with self.world.together():  # a rank's error reaches the others instead of leaving them waiting
            for group in tqdm(groups, desc="training references", disable=not self.progress or not groups,
                              unit="group"):
                self._get_or_train(group, *self.tensors.retain, f"references x{len(group)}")
        if self.world.size > 1 and self.world.is_main:
            self.store.write_manifest()  # ranks saving at once may each have missed the others' records

    def reference_scores(self, indices) -> tuple[list, list]:
        """References ``indices``' scores and training seconds, trained first where missing;
        under torchrun each rank scores its share and every rank gets all of them."""
        indices = list(indices)
        self.ensure_retrained(indices)
        mine = {}
        with self.world.together():
            for i in self.world.shard(indices):
                scores, record = self.retrained_scores(i)
                mine[i] = (scores, record["train_seconds"])
        everything = self.world.gather(mine)
        return [everything[i][0] for i in indices], [everything[i][1] for i in indices]

    def original_scores(self, k: int = 0) -> tuple[ModelScores, dict]:
        """Original ``k``'s ``(scores, record)``."""
        return self._scores(self.original_config(k), lambda: self.original(k))

    def retrained_scores(self, index: int) -> tuple[ModelScores, dict]:
        """Reference ``index``'s ``(scores, record)``; the model is trained first if it is missing."""
        return self._scores(self.retrained_config(index), lambda: self.retrained(index))

    def _scores(self, config: dict, get_model) -> tuple[ModelScores, dict]:
        """A stored model's scores, read back when this evaluation has computed them before
        (at N = 512 that saves loading 23 GB of weights and 28 M model-images of inference
        per evaluation); otherwise computed from ``get_model()`` and kept."""
        key = config_key(config)
        if self.store.has(key):
            record = self.store.record(key)
            scores = self._stored_scores(key, record)
            if scores is not None:
                return scores, record
        model, record = get_model()  # loads it, or trains it (which stores its scores)
        scores = self._stored_scores(key, record)
        if scores is None:
            if self.world.is_main and not self._told_of_rescoring and self.store.has_arrays_like(f"scores_{key}_"):
                self._told_of_rescoring = True
                tqdm.write(f"note: the scores cached in {self.store.root} are not this evaluation's (an older kit's, "
                           "or another split's); they are computed again from the stored models (no model is "
                           "retrained)", file=sys.stderr)
            scores = score_states([model.state_dict()], self.tensors, self.data.num_classes)[0]
            self.store.save_arrays(self.scores_name(key, record), scores.to_arrays())
        return scores, record

    def _stored_scores(self, key: str, record: dict) -> ModelScores | None:
        arrays = self.store.arrays(self.scores_name(key, record))
        try:
            return None if arrays is None else ModelScores.from_arrays(arrays)
        except (KeyError, ValueError, TypeError):
            return None  # an incomplete or foreign file: recompute it

    def scores_name(self, key: str, record: dict) -> str:
        """Scores belong to these weights (a retrained model gets new ones) and to this
        evaluation: its data, splits and device (CPU and CUDA round differently)."""
        evaluation = {
            "version": SCORING_VERSION,
            "data": self.data.fingerprint(),
            "splits": {name: _indices_hash(getattr(self.splits, name)) for name in ("retain", "forget", "test")},
            "device": self.device.type,
        }
        return f"scores_{key}_{config_key({'weights': record['sha256'], 'evaluation': evaluation})}"

    def retrained_models(self, count: int, start: int = 0):
        """Yield ``(model, record)`` for references start..start+count-1, training the missing ones first."""
        self.ensure_retrained(range(start, start + count))
        for i in range(start, start + count):
            yield self.retrained(i)

    def _load(self, config):
        """The stored model of ``config`` as ``(model, record)``, or None (a corrupt one is discarded)."""
        key = config_key(config)
        if not self.store.has(key):
            return None
        try:
            model = empty_model(self.data.num_classes)
            model.load_state_dict(self.store.load(key))
        except CorruptCheckpoint as e:
            tqdm.write(f"warning: {e}; retraining it", file=sys.stderr)
            self.store.discard(key)
            return None
        return model.to(self.device).eval(), self.store.record(key)

    def _get_or_train(self, configs: list[dict], images, labels, desc) -> list[tuple]:
        """``(model, record)`` per config (same recipe), training the missing ones together."""
        found = [self._load(c) for c in configs]
        todo = [c for c, f in zip(configs, found) if f is None]
        if todo and self.world.is_main and not self._told_of_older:
            self._told_of_older = True
            older = self.store.older_models(KEY_VERSION)
            if older:
                tqdm.write(f"note: {self.store.root} holds {len(older)} models made by an older version of the kit "
                           f"(key version < {KEY_VERSION}); they cannot be reused and are kept. This run trains what "
                           f"it needs; `python -m evaluation.store prune {self.store.root}` deletes the old ones.",
                           file=sys.stderr)
        if todo:
            recipe = TrainRecipe(**todo[0]["recipe"])
            states, seconds, _ = train_models(
                images, labels, recipe, [c["model_seed"] for c in todo], self.data.num_classes, self.progress, desc,
                precision=todo[0].get("precision", "fp32"), pixels=self.data.pixels,
            )
            # One inference serves both the records' accuracies and the scores' cache.
            scores = score_states(states, self.tensors, self.data.num_classes)
            trained = iter([self._save(*args, seconds / len(todo)) for args in zip(todo, states, scores)])
            self.store.write_manifest()
            found = [f if f is not None else next(trained) for f in found]
        return found

    def _save(self, config, state, scores: ModelScores, seconds):
        device = self.device
        model = empty_model(self.data.num_classes, device)
        model.load_state_dict(state)
        model.eval()
        accs = {"retain": scores.retain_acc, "forget": scores.forget_acc, "test": scores.test_acc}
        key = config_key(config)
        record = self.store.save(key, model.state_dict(), config, manifest=False, train_seconds=seconds,
                                 device=str(device), accuracy=accs, profile=self.profile.name)
        self.store.save_arrays(self.scores_name(key, record), scores.to_arrays())
        return model, record


def _indices_hash(indices: np.ndarray) -> str:
    """A short hash of indices in their order (sort them first where order does not matter)."""
    return hashlib.sha256(np.asarray(indices, dtype=np.int64).tobytes()).hexdigest()[:16]
