"""Evaluation: plan a grid of jobs, run each job (fit, time, score), compute its metrics, record it."""
