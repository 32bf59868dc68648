"""Training ResNet-18s: the engine that trains many at once (``engine``), its small-input
convolutions (``small_convs``), the recipe (``recipe``), the starter kit's own loop
(``starter_kit``), the model factory and device choice (``model``), and the arithmetic
(``precision``). It depends on ``data`` only; ``evaluation`` and ``methods`` build on it."""
