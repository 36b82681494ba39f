"""The built-in synthesizers: three baselines of the literature and AnomalyXFusion with ablations."""

from synthesis.registry import register

register("perlin", "synthesis.baselines.perlin:PerlinSynthesizer",
         summary="DRAEM-style Perlin-noise masks filled with a blended texture")
register("cutpaste", "synthesis.baselines.cutpaste:CutPasteSynthesizer",
         summary="CutPaste (normal patch) with its mask")
register("cutpaste-scar", "synthesis.baselines.cutpaste:CutPasteSynthesizer", overrides={"variant": "scar"},
         ablation_of="cutpaste", summary="CutPaste scar variant (thin rotated strips)")
register("croppaste", "synthesis.baselines.croppaste:CropPasteSynthesizer",
         summary="Real training-split defects cut with their masks and pasted onto normal images")
