"""What a model costs, measured without changing it: parameters, MACs, activations and conv calls with
the NTIRE definitions (`complexity`), and the peak memory a forward pass takes (`memory`).

Below the transforms, the zoo, pruning, inference and the benchmarks, which all measure models with it.
"""
