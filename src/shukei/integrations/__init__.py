"""Entry points for schedulers and serverless platforms (AWS Lambda)."""
