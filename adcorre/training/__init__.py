"""Training: `TrainModel` (`train_model`), the Ad-Corre loss (`custom_loss`), the trainer and
its callbacks (`trainer`), learning-rate schedules and optimisers."""
