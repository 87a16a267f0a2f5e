"""Call recordings: the rules a call follows, and where the file is kept (S3, by session id)."""
