"""Progressive saliency-guided unlearning (this project's own method; methods.md section 10).

0. Teacher: a frozen copy of the original (none when ``distill_weight`` is 0: no teacher
   forward pass in any step). Budget: ``max_steps`` optimiser steps in all (optionally
   also ``time_budget`` seconds), counted step by step, rounds included; ``max_epochs``
   and ``repair_epochs`` give the budget and each round's repair as shares of one pass
   over the retain set instead, so that they mean the same on any profile.
   Check: per-example losses on the forget set and on ``check_examples`` validation
   images; AUC = P(forget loss < validation loss). A model that never saw the forget
   set scores 0.5 up to sampling noise, whose size under that hypothesis is
   se = sqrt((n_f + n_v + 1) / (12 n_f n_v)).
Rounds r = 1..``max_rounds``:
1. Left to forget (``left``): ``"median"``, the forget examples whose loss is still below
   the validation median; a model that never saw them has half of them there too.
   ``"excess"``: only the excess over what such a model shows, the k lowest-loss forget
   examples, k = (number below the median) - n_f / 2 - ``tolerance`` x sqrt(n_f) / 2 (the
   binomial sd); none left ends the run ("nothing left").
2. Saliency: |gradient of the impair loss| over those (eval mode). ``mask="weights"``:
   the top ``mask_fraction`` of all weights. ``mask="layers"``: ``mask_layers`` whole
   convolution weights outside the shortcuts (the winners' evidence: layer-wise beats
   element-wise, ``fc`` and the shortcuts left alone), drawn without replacement with
   probability proportional to each one's gradient norm relative to its weights' norm,
   to the power ``saliency_power``, afresh in every run. ``mask="random_layers"``: as many, drawn uniformly: the control
   that measures what the saliency adds.
3. Partial update and diversity: Gaussian noise on the masked weights, sd = ``noise`` x
   each tensor's sd. It erases what those weights hold of the forget set, and retrained
   models disagree from seed to seed while the metric scores identical runs the worst;
   the run seed draws the noise, the batches and the check's images.
4. Impair (``variant="saliency"``, off by default: ``impair_steps=0``): steps pulling the
   left examples' predictions to uniform while a retain batch in the same step keeps its
   cross-entropy (weight ``impair_anchor``), only masked weights moving (restored after
   every step, their momentum zeroed, so weight decay and momentum cannot leak). Measured:
   these steps lower every image's confidence with the forget set's, and the noise
   alone forgets as much at less cost. BatchNorm rule: the impair step runs in eval mode,
   so running statistics never move and forget batches are normalised like any input at
   test time.
5. Repair: ``repair_steps`` steps on retain batches at a small learning rate,
   cross-entropy plus distillation towards the teacher, every weight moving
   (``repair_scope="mask"``: only the masked ones; ``"outside"``: only those outside every
   round's mask so far, so the repair cannot bring back what the noise erased); train
   mode, so BatchNorm statistics follow the retain data. Steps that leave non-finite weights (inputs far from what the
   model saw) are undone; the noise stays.
6. Check. Damaged (validation accuracy below ``val_floor`` x the original's): no stop,
   whatever the AUC says, as a broken model's losses are high everywhere; the next round
   only repairs (step 5 on the same mask). Otherwise stop when AUC <= 0.5 + ``tolerance``
   x se: matched, or overshot (forget examples now look worse than unseen ones; a further
   round would impair more). Also stop when the budget is spent, or after ``max_rounds``
   (``rounds="fixed"``: always the rounds, budget only).
The first round always runs: an unchanged original makes every run identical.
``variant="impair_repair"``: one quick logit-level impair first (``impair_steps`` steps on
the last layer only; set it above 0), then rounds 1-3, 5, 6 (saliency-guided repair, no
further impair).
Every round is logged in ``self.round_log``; the harness puts it in the report.
"""

import math
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from . import register
from .BaseMethod import BaseMethod
from .common import (
    FrozenOutsideMask,
    StepBudget,
    accumulate_gradients,
    conv_layers,
    distillation_kl,
    endless_batches,
    frozen_copy,
    gradient_saliency,
    kl_to_uniform,
    loader_losses,
    loader_over,
    sgd,
    train_steps,
)
from .hyperparameters import tuned
from .salun import random_label_loss

IMPAIR_LOSSES = {"kl_uniform": lambda n, x, y: kl_to_uniform(n(x)), "random_labels": random_label_loss}
STOPS = ("forgotten", "overshoot")
CHOICES = {"impair": IMPAIR_LOSSES, "variant": ("saliency", "impair_repair"), "rounds": ("until_forgotten", "fixed"),
           "repair_scope": ("mask", "all", "outside"), "mask": ("weights", "layers", "random_layers"),
           "left": ("median", "excess")}


def lower_loss_auc(forget_losses: torch.Tensor, val_losses: torch.Tensor) -> tuple[float, float]:
    """``(P(forget loss < validation loss), its standard error when both come from one
    distribution)``; ties count half."""
    f, v = forget_losses.double()[:, None], val_losses.double()[None, :]
    auc = ((f < v).double() + 0.5 * (f == v).double()).mean().item()
    n_f, n_v = len(forget_losses), len(val_losses)
    return auc, math.sqrt((n_f + n_v + 1) / (12 * n_f * n_v))


def erasable_layers(net) -> list[str]:
    """The convolution weights outside the projection shortcuts (``downsample``), the stem's
    included: the pool ``mask="layers"`` draws from."""
    return [f"{name}.weight" for name, _ in conv_layers(net) if "downsample" not in name]


def layer_masks(net, grads: dict, count: int, by_saliency: bool, power: float = 1.0) -> dict[str, torch.Tensor]:
    """Whole-tensor masks on ``count`` layers of the pool, drawn without replacement by the
    run's generator: with probability proportional to (||gradient|| / ||weights||) ** ``power``
    (scale-free across layers; a high power comes close to the top layers), or uniformly
    (the control)."""
    pool, params = erasable_layers(net), dict(net.named_parameters())
    if by_saliency:
        ratios = torch.stack([grads[n].norm() / params[n].detach().norm().clamp_min(1e-12) for n in pool]).cpu()
        ratios = ratios.double() / ratios.double().max().clamp_min(1e-300)
        weights = ratios**power + 1e-12  # a layer with no gradient can still be drawn, rarely
    else:
        weights = torch.ones(len(pool), dtype=torch.float64)
    drawn = torch.multinomial(weights, min(count, len(pool)), replacement=False).tolist()
    return {pool[i]: torch.ones_like(params[pool[i]]) for i in sorted(drawn)}


def excess_left(forget_losses: torch.Tensor, val_losses: torch.Tensor, tolerance: float) -> list[int]:
    """The forget examples beyond what a model that never saw them would leave below the
    validation median: the k lowest-loss ones, k the excess count less ``tolerance`` binomial sds."""
    n = len(forget_losses)
    below = int((forget_losses < val_losses.median()).sum())
    k = math.floor(below - n / 2 - tolerance * math.sqrt(n) / 2)
    return torch.argsort(forget_losses)[:k].tolist() if k > 0 else []


@torch.no_grad()
def add_masked_noise(net, masks: dict, scale: float) -> None:
    """Gaussian noise on the masked entries, sd = ``scale`` x the tensor's own sd."""
    if scale <= 0:
        return
    for name, p in net.named_parameters():
        if name in masks and p.numel() > 1:
            p.add_(torch.randn_like(p) * masks[name] * scale * p.std())


def union(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The 0/1 masks set in ``a`` or in ``b``."""
    return {n: torch.maximum(a[n], b[n]) if n in a and n in b else a.get(n, b.get(n)) for n in a.keys() | b.keys()}


@register("saliency_guided")
@dataclass(kw_only=True, eq=False)
class SaliencyGuided(BaseMethod):
    variant: str = "saliency"
    rounds: str = "until_forgotten"
    # Defaults: benchmarks/RESULTS.md, "Tuning saliency_guided" (stage 3 chose them).
    max_rounds: int = 2
    max_steps: int = 30  # impair + repair steps of the whole run
    time_budget: float | None = None  # seconds, on top of max_steps; None: steps alone decide
    mask: str = "weights"
    mask_fraction: float = tuned(0.1, 0.02, 0.5, log=True)  # mask="weights"
    mask_layers: int = 3  # mask="layers" or "random_layers": of the 17 convolution weights
    saliency_power: float = 1.0  # mask="layers": the draw's sharpness
    left: str = "median"
    max_epochs: float | None = None  # instead of max_steps: passes over the retain set
    repair_epochs: float | None = None  # instead of repair_steps: each round's share of a pass
    noise: float = tuned(0.5, 0.1, 1.5)
    impair: str = "kl_uniform"
    impair_steps: int = 0  # measured: noise alone forgets at less cost to retain accuracy
    impair_lr: float = 0.01
    impair_anchor: float = 1.0  # weight of a retain batch's cross-entropy in every impair step
    repair_steps: int = tuned(15, 5, 40)
    repair_lr: float = tuned(0.002, 5e-4, 1e-2, log=True)  # 0.01 and above break these memorised models
    repair_scope: str = "all"
    distill_weight: float = 1.0
    distill_temperature: float = 2.0
    tolerance: float = 1.0  # in standard errors of the AUC
    check_examples: int = 256  # validation images the check compares with
    val_floor: float = 0.9  # a stop needs this share of the original's validation accuracy
    round_log: list = field(default_factory=list, init=False)

    def __post_init__(self):
        super().__post_init__()
        for key, allowed in CHOICES.items():
            if getattr(self, key) not in allowed:
                raise ValueError(f"{key} must be one of {', '.join(sorted(allowed))}")
        if self.tolerance < 0:
            raise ValueError(f"tolerance is in standard errors and cannot be negative, got {self.tolerance}")
        for key in ("max_epochs", "repair_epochs"):
            if getattr(self, key) is not None and not getattr(self, key) > 0:
                raise ValueError(f"{key} is a share of a pass over the retain set and must be positive, "
                                 f"got {getattr(self, key)}")
        if self.mask_layers < 1:
            raise ValueError(f"mask_layers must be at least 1, got {self.mask_layers}")
        if not 0 <= self.val_floor <= 1:
            raise ValueError("val_floor is a share of the original's validation accuracy (0 to 1), "
                             f"got {self.val_floor}")

    def run(self, net, retain_loader, forget_loader, val_loader):
        epoch = len(retain_loader)
        budget = StepBudget(self.max_steps if self.max_epochs is None else math.ceil(self.max_epochs * epoch),
                            self.time_budget)
        repair_steps = self.repair_steps if self.repair_epochs is None else math.ceil(self.repair_epochs * epoch)
        teacher = frozen_copy(net) if self.distill_weight else None
        impair_loss = IMPAIR_LOSSES[self.impair]
        forget_in_order = loader_over(forget_loader, shuffle=False)
        picked = torch.randperm(len(val_loader.dataset))[: self.check_examples].tolist()
        val_check = loader_over(val_loader, shuffle=False, indices=picked)

        retain_batches = endless_batches(retain_loader)

        def anchored_impair_loss(n, x, y):
            # Alone, "predict uniformly on these" is also met by breaking every prediction;
            # a retain batch in the same step rules that shortcut out.
            if self.impair_anchor == 0:
                return impair_loss(n, x, y)
            xr, yr = (t.to(x.device) for t in next(retain_batches))
            logits = n(torch.cat([x, xr]))  # eval mode: one forward, examples independent
            return impair_loss(lambda _: logits[: len(x)], x, y) + self.impair_anchor * F.cross_entropy(
                logits[len(x):], yr)

        def repair_loss(n, x, y):
            logits = n(x)
            if teacher is None:
                return F.cross_entropy(logits, y)
            return F.cross_entropy(logits, y) + self.distill_weight * distillation_kl(
                logits, teacher(x).detach(), self.distill_temperature)

        state = self._check(net, forget_in_order, val_check, 0, 0.0, budget)
        self.round_log = [state["log"]]
        if self.variant == "impair_repair":  # logit level: the last layer alone
            head = [p for n, p in net.named_parameters() if n.startswith("fc.")]
            train_steps(net, forget_loader, sgd(net, self.impair_lr, params=head), self.impair_steps, budget,
                        loss_fn=anchored_impair_loss, train_mode=False)
        stop, masks, erased = None, None, None
        for r in range(1, self.max_rounds + 1):
            damaged = state["verdict"] == "damaged"
            if not state["left"] and not damaged:
                stop = "nothing left"
                break
            before = [p.detach().clone() for p in net.parameters()]
            if not damaged:  # a damaged model only repairs, on the last round's mask
                left = loader_over(forget_loader, indices=state["left"])
                masks = self.saliency_mask(net, left, impair_loss)
                erased = union(erased or {}, masks)
                add_masked_noise(net, masks, self.noise)
            kept = {k: v.clone() for k, v in net.state_dict().items()}
            if not damaged and self.variant == "saliency":
                self.masked_steps(net, left, masks, self.impair_lr, self.impair_steps, budget, anchored_impair_loss,
                                   False)
            repair_masks = {"all": None, "mask": masks, "outside": {n: 1 - m for n, m in erased.items()}
                            if erased else None}[self.repair_scope]
            self.masked_steps(net, retain_loader, repair_masks, self.repair_lr, repair_steps, budget, repair_loss, True)
            # Inputs far from what the model saw (an untrained model, raw pixels) can
            # overflow the steps; undo them rather than hand back NaN (the noise stays).
            undone = not all(torch.isfinite(v).all() for v in net.state_dict().values() if v.is_floating_point())
            if undone:
                net.load_state_dict(kept)
            changed = sum(int((p.detach() != b).sum()) for p, b in zip(net.parameters(), before))
            state = self._check(net, forget_in_order, val_check, r, changed / sum(b.numel() for b in before), budget)
            self.round_log.append(state["log"] | ({"layers": sorted(masks)} if self.mask != "weights" else {})
                                  | ({"steps_undone": "non-finite weights"} if undone else {}))
            verdict = state["verdict"] if state["verdict"] in STOPS else None
            stop = budget.spent() or (self.rounds == "until_forgotten" and verdict)
            if stop:
                break
        self.round_log[-1]["stop"] = stop or "rounds"
        net.eval()

    def saliency_mask(self, net, left, impair_loss) -> dict[str, torch.Tensor]:
        """Step 2: the weights this round erases (0/1 masks by parameter name)."""
        if self.mask == "weights":
            return gradient_saliency(net, left, impair_loss, self.mask_fraction)
        grads = accumulate_gradients(net, left, impair_loss, train_mode=False) if self.mask == "layers" else None
        return layer_masks(net, grads, self.mask_layers, self.mask == "layers", self.saliency_power)

    def masked_steps(self, net, loader, masks, lr, steps, budget, loss_fn, train_mode):
        """One phase of a round: ``steps`` SGD steps of ``loss_fn`` on ``loader`` that move only the
        masked weights (all of them when ``masks`` is None)."""
        optimizer = sgd(net, lr)
        frozen = FrozenOutsideMask(net, masks, optimizer) if masks is not None else None
        train_steps(net, loader, optimizer, steps, budget, loss_fn=loss_fn, train_mode=train_mode,
                    after_backward=frozen and frozen.mask_gradients, after_step=frozen and frozen.restore)

    def _check(self, net, forget_in_order, val_check, round_index, masked_fraction, budget) -> dict:
        forget_losses, forget_correct = loader_losses(net, forget_in_order)
        val_losses, val_correct = loader_losses(net, val_check)
        auc, se = lower_loss_auc(forget_losses, val_losses)
        margin = self.tolerance * se
        verdict = "overshoot" if auc < 0.5 - margin else "forgotten" if auc <= 0.5 + margin else None
        val_acc = val_correct.float().mean().item()
        if round_index == 0:
            self._val_acc_original = val_acc
        elif val_acc < self.val_floor * self._val_acc_original:
            # A broken model's losses are high everywhere, which reads as "forgotten";
            # a model that never saw the forget set keeps the original's val accuracy.
            verdict = "damaged"
        log = {"round": round_index, "masked_fraction": masked_fraction,
               "forget_acc": forget_correct.float().mean().item(), "val_acc": val_acc,
               "auc": auc, "auc_se": se, "verdict": verdict, "steps": budget.taken,
               "seconds": time.perf_counter() - budget.started}
        if self.left == "median":
            left = (forget_losses < val_losses.median()).nonzero().squeeze(1).tolist()
        else:
            left = excess_left(forget_losses, val_losses, self.tolerance)
        log["left"] = len(left)
        return {"log": log, "left": left, "verdict": verdict}
