"""The task table (`tasks`), its inputs (`openworld`, `scene_setup`) and `clap.evaluate` (`evaluate`)."""
