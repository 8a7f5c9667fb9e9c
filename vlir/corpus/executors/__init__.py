"""How a build's reads and tasks run: :mod:`.local` (one machine's process pool) and
:mod:`.ray_cluster` (Ray). Both run the same tasks and write the same bytes."""
