"""Built-in fold passes, one module each; importing this package registers them (see `list_passes()`)."""
from edgesr.transforms.passes import (  # noqa: F401 - imported to register
    conv_bn,
    conv_chain,
    identity_residual,
    mean_shift,
    repconv,
    res_scale,
    value_scale,
)
