"""The shrunk demo's options, shared by the tests that run it (a few minutes on 2 cores instead of an hour)."""

SMALL = ["--adapter-seeds", "1", "--clap-steps", "30", "--imaug-steps", "20", "--clipn-steps", "20",
         "--images-per-class", "2", "--val-images-per-class", "1", "--imaug-prompts-per-class", "2",
         "--caption-images-per-class", "2", "--attack-images", "1", "--eps", "8/255", "--jobs", "2", "--no-progress"]
