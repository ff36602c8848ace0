"""The agent: tools, prompt assembly, reply protocols and the loop that ties them together."""
