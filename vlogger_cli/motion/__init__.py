"""Stage 1 (VLOGGER §3.1): speech -> per-frame expression θe and body-pose residuals Δθb.

    representation  the 127-channel motion vector, channel names, 6D rotation helpers, normalisation
    denoiser        causal transformer predicting x0 (diffusers ModelMixin/ConfigMixin), size presets
    diffusion       L_diff + L_temp, sampling with DDPM / DDIM / DPM-Solver
    outpaint        arbitrary length by temporal outpainting of fixed windows
    generate        generate_motion (the pipeline's entry point), best-of-K
    artifacts       Motion, save_motion / load_motion (motion.safetensors), plot_motion (motion.png)
    quality         ground-truth-free lip-sync / silence / smoothness measures
    espeak, visemes, behaviour, corpus, dataset
                    the synthetic training corpus and the motion dataset format
    weights         export / load a motion weights folder

Importing this package imports nothing heavy; import the submodules.
"""
