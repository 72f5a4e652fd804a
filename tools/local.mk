# tools/: the redislock command-line tool (issue 4).
