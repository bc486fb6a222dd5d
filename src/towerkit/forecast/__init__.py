"""forecast: a dual-tower (time series + text) forecaster of open-source project health on
OpenDigger's monthly metrics, with statsforecast baselines and a rolling-origin backtest."""
