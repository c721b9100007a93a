"""File store adapters (the domain's ``FileStore`` port): a local folder, an S3 bucket."""
