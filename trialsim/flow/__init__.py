"""Patient flow (SimPy): referral, screening, allocation, surgery, ward stay, follow-up and closure."""
from trialsim.flow.run import TRIAL_FIELDS, FlowBatch, FlowDraws, draw_flow, run_flow, simulate_flow

__all__ = ["TRIAL_FIELDS", "FlowBatch", "FlowDraws", "draw_flow", "run_flow", "simulate_flow"]
