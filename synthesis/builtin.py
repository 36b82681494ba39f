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
register("axf", "synthesis.axf.synthesizer:AXFSynthesizer",
         summary="AnomalyXFusion: caption + masked defect image + mask fused (MIF), timestep-adjusted (DDF), "
                 "diffusion U-Net sampled with DDIM + RePaint in a window around the mask")
register("axf-no-text", "synthesis.axf.synthesizer:AXFNoTextSynthesizer", overrides={"use_text": False},
         ablation_of="axf", summary="AXF without the text branch (captions ignored)")
register("axf-no-image", "synthesis.axf.synthesizer:AXFSynthesizer", overrides={"use_image": False},
         ablation_of="axf", summary="AXF without the image branch (no masked-image features, no defect tokens)")
register("axf-no-mask-tokens", "synthesis.axf.synthesizer:AXFSynthesizer", overrides={"use_mask_tokens": False},
         ablation_of="axf", summary="AXF without the location branch (no mask tokens in the X-embedding)")
register("axf-no-ddf", "synthesis.axf.synthesizer:AXFSynthesizer", overrides={"use_ddf": False},
         ablation_of="axf", summary="AXF without Dynamic Dif-Fusion (the X-embedding ignores the timestep)")
