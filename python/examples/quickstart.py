"""The README's Python example: the original's functions, then an instance of one's own."""
import tempfile

import onthefly

# The original API (configuration from the environment, keywords on top).
onthefly.initialize_online_training(update_threshold=50, data_dir=tempfile.mkdtemp())
for text, outlet in [("Markets rally as rates hold", "reuters"), ("Storm batters the coast", "bbc")]:
    onthefly.add_training_example("scout", "news", text, outlet, uncertainty_score=0.5)
onthefly.add_user_correction("scout", "news", "Storm batters the coast", "cnn", "bbc")  # updates at once
onthefly.wait_for_idle(timeout=60)
print(onthefly.predict("scout", "news", "Rates hold, markets rally"))
print(onthefly.get_training_status()["buffer_sizes"])

# An instance of one's own, closed when the block ends.
with onthefly.Coordinator(data_dir=tempfile.mkdtemp(), update_threshold=2) as c:
    c.add_training_example("critic", "tone", "A measured, careful review", 0.8, uncertainty_score=0.4)
    c.add_training_example("critic", "tone", "A furious rant", 0.1, uncertainty_score=0.4)
    c.wait_for_idle(timeout=60)
    try:
        print(c.predict("critic", "tone", "A calm essay").output)
    except onthefly.NoModelError as e:  # before the first accepted update
        print("no model yet:", e)
