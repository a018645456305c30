"""Training: `TrainModel` (`train_model`) over the train step (`train_step`), the Ad-Corre loss
(`custom_loss`), the splits (`splits`), distribution, callbacks, resume, schedules, optimisers."""
