"""Deployment formats: slim safetensors weights, standard-op ONNX export, and the files' loaders."""
