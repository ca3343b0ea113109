"""metacurriculum: curriculum-driven meta-learning.

Importing the package registers the Gymnasium environments (ids in
:data:`metacurriculum.registration.ENV_SPECS`); nothing heavy (torch,
torchvision) is imported until an environment is made.
"""

from metacurriculum.registration import ENV_SPECS, register_envs

__version__ = "0.1.0"
__all__ = ["ENV_SPECS", "__version__", "register_envs"]

register_envs()
