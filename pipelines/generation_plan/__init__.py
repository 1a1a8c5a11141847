"""How many synthetic samples each label x skin-tone [x sex] cell needs (METHOD.md §4)."""

from pipelines.generation_plan.params import GenerationPlanParams
from pipelines.generation_plan.plan import PLAN_COLUMNS, cell_name, compute_plan, real_counts
from pipelines.generation_plan.stage import GenerationPlanOutputs, output_paths, run_generation_plan

__all__ = ["PLAN_COLUMNS", "GenerationPlanOutputs", "GenerationPlanParams", "cell_name", "compute_plan",
           "output_paths", "real_counts", "run_generation_plan"]
