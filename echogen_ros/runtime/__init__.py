"""Everything the ROS node does, in plain Python on message objects (rclpy's or rosbags'): frame intake,
instruction handling, the grounding schedule, and the ground / verify / imagine request flows."""
