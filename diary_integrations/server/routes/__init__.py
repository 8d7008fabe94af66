"""The REST routes, one module per family of entities (paths after DearDiary.jl's)."""
