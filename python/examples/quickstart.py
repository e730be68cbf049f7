"""The README's Python example: the original's functions, then an instance of one's own."""
import tempfile

import onthefly

# The original API (configuration from the environment, keywords on top).
onthefly.initialize_online_training(update_threshold=50, data_dir=tempfile.mkdtemp())
stories = [("Markets rally as rates hold", "reuters"), ("Storm batters the coast", "bbc"),
           ("Shares slip as rates rise", "reuters"), ("Floods close coast roads", "bbc")]
for text, outlet in stories:
    onthefly.add_training_example("scout", "news", text, outlet, uncertainty_score=0.5)
# A person's correction: never held out, and priority 2 starts an update now.
onthefly.add_user_correction("scout", "news", "Rates hold, markets rally", "bbc", "reuters")
onthefly.wait_for_idle(timeout=60)
scout = onthefly.get_training_status()["agents"]["scout"]
# A share of the examples judges each update and is not trained on: a story
# whose only example was held out is not known yet.
print(f"{scout['examples_trained']} trained, {scout['examples_held_out']} held out to judge updates")
print(onthefly.predict("scout", "news", "Markets rally again"))

# An instance of one's own, closed when the block ends; True/False are labels.
with onthefly.Coordinator(data_dir=tempfile.mkdtemp(), update_threshold=2) as c:
    c.add_user_correction("fact_checker", "verified", "The report cites the budget office", False, True)
    c.add_user_correction("fact_checker", "verified", "A post claims the moon is cheese", True, False)
    c.wait_for_idle(timeout=60)
    try:
        print(c.predict("fact_checker", "verified", "The office published the report").output)
    except onthefly.NoModelError as e:  # before the first accepted update
        print("no model yet:", e)
