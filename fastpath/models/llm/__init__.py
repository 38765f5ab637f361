"""specoracle.fastpath.models.llm."""
