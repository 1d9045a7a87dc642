"""Optional LoRA (peft) adapters on a policy, and folding them back so the output is a plain restorer artifact."""

from __future__ import annotations

from torch import nn


def lora_target_names(module: nn.Module) -> list[str]:
    """The Linear and Conv2d layers of ``module``, by their qualified names (peft accepts both kinds)."""
    return [
        name for name, child in module.named_modules() if isinstance(child, nn.Linear | nn.Conv2d) and name
    ]


def add_lora(policy: nn.Module, *, rank: int, alpha: int) -> nn.Module:
    """Inject LoRA adapters into the policy's UNet (or the whole policy when it has none), in place.

    Only the adapters train afterwards; the base weights are frozen. Returns the module the adapters went into.
    """
    from peft import LoraConfig, inject_adapter_in_model

    target = getattr(policy, "unet", policy)
    if not isinstance(target, nn.Module):
        target = policy
    names = lora_target_names(target)
    if not names:
        raise ValueError("the policy has no Linear or Conv2d layers to put LoRA adapters on")
    for parameter in policy.parameters():
        parameter.requires_grad_(False)
    config = LoraConfig(
        r=rank, lora_alpha=alpha, target_modules=names, lora_dropout=0.0, init_lora_weights=True
    )
    inject_adapter_in_model(config, target)
    for name, parameter in target.named_parameters():
        parameter.requires_grad_("lora_" in name)
    return target


def merge_lora(policy: nn.Module) -> None:
    """Fold every LoRA adapter into its base layer and put the base layer back, in place."""
    from peft.tuners.lora import LoraLayer

    replacements = []
    for name, child in policy.named_modules():
        if isinstance(child, LoraLayer):
            child.merge()
            replacements.append((name, child.get_base_layer()))
    for name, base in replacements:
        parent_name, _, attribute = name.rpartition(".")
        parent = policy.get_submodule(parent_name) if parent_name else policy
        setattr(parent, attribute, base)
