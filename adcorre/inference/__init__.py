"""Using trained models: `TestModels` (`model_tester`); finding and cropping faces
(`face_crops`); videos, webcams and folders (`media_analysis`); Grad-CAM (`grad_cam`); the
embedding map (`embedding_map`); exports (`export`)."""
