"""Embedded devices that a decoder is checked against, with the figures behind each bound.

The bounds are necessary, not sufficient: a model whose parameters or MACs per second of audio
exceed a device's figure cannot run there in real time as measured here, but one within them
may still not (memory for activations, the synthesizer, the operating system, and compute
below the peak rate are left out). Every figure comes from the sources named beside it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEVICES", "FLOAT32_BYTES", "Device", "bound"]

FLOAT32_BYTES = 4
"""Bytes per parameter as the decoder stores them (float32)."""


@dataclass(frozen=True)
class Device:
    """A device's memory for the weights and its assumed sustained MAC rate, with sources."""

    key: str
    name: str
    weight_memory_bytes: int
    weight_memory: str
    macs_per_second: float
    mac_assumption: str
    sources: tuple[str, ...]


RASPBERRY_PI_4 = Device(
    key="pi4",
    name="Raspberry Pi 4 Model B (BCM2711, 4x Cortex-A72 at 1.5 GHz, 1 GB LPDDR4 or more)",
    weight_memory_bytes=1 << 30,
    weight_memory="1 GB RAM, the smallest Pi 4 (weights loaded into RAM)",
    # one 128-bit NEON FMLA per cycle: 4 float32 MACs a cycle, on the one core a batch-1
    # stream uses; the A72's peak may be higher, its sustained rate on small layers lower
    macs_per_second=4 * 1.5e9,
    mac_assumption="4 float32 MACs per cycle (one 128-bit NEON fused multiply-add) on one core "
    "at 1.5 GHz",
    sources=(
        "Raspberry Pi 4 Model B specifications: "
        "https://www.raspberrypi.com/products/raspberry-pi-4-model-b/specifications/",
        "Arm Cortex-A72 processor page: https://developer.arm.com/Processors/Cortex-A72",
    ),
)

ARDUINO_NANO_33_BLE_SENSE = Device(
    key="nano33",
    name="Arduino Nano 33 BLE Sense (nRF52840, Cortex-M4F at 64 MHz, 256 KB SRAM, 1 MB flash)",
    weight_memory_bytes=1 << 20,
    weight_memory="1 MB flash (constant weights stay in flash; the 256 KB SRAM holds the "
    "state and activations, not bounded here)",
    # the M4's multiply-accumulate instructions issue in one cycle (integer, e.g. fixed-point
    # weights); a float32 fused multiply-add takes 3 cycles on its FPU
    macs_per_second=1 * 64e6,
    mac_assumption="1 MAC per cycle at 64 MHz (the Cortex-M4's single-cycle MAC: fixed-point "
    "weights; float32 fused multiply-adds take 3 cycles, a third of this rate)",
    sources=(
        "Arduino Nano 33 BLE Sense product page: https://docs.arduino.cc/hardware/nano-33-ble-sense/",
        "Nordic nRF52840 product page: https://www.nordicsemi.com/Products/nRF52840",
        "Arm Cortex-M4 Technical Reference Manual (instruction timings): "
        "https://developer.arm.com/documentation/ddi0439/latest/",
    ),
)

DEVICES: tuple[Device, ...] = (RASPBERRY_PI_4, ARDUINO_NANO_33_BLE_SENSE)
"""The devices of the listening table's bound columns, in column order."""


def bound(device: Device, param_bytes: float, macs_per_second: float) -> str:
    """Whether float32 weights of ``param_bytes`` and ``macs_per_second`` of audio fit
    ``device``, with the shares of its memory and MAC rate they take, e.g.
    ``"yes (memory 0.1%, MACs 2.3%)"``."""
    memory = param_bytes / device.weight_memory_bytes
    compute = macs_per_second / device.macs_per_second
    verdict = "yes" if memory <= 1.0 and compute <= 1.0 else "no"
    return f"{verdict} (memory {_percent(memory)}, MACs {_percent(compute)})"


def _percent(share: float) -> str:
    """A share as a percentage with about three significant figures."""
    return f"{100 * share:.3g}%"
