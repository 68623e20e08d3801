"""From instruction to goal scene: parse the command, ground its phrases, place the goal box, build the
goal layout, imagine it, and verify a frame against the goal."""
