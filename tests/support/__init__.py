"""What the tests share: the data they read, the commands they run, local servers, tiny generators."""
