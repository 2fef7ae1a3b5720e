"""Helpers of the notebooks, not of the method: figures and widgets with static fallbacks (``plotting``) and the
checks of the papermill parameters (``parameters``), Algorithm 1 alone on fixed samples (``discriminator``), the
measured run times that each notebook shows and prints (``timing``)."""
