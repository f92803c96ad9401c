"""The Kotlin and Swift calls signature.json carries: one call of the exported model, with its input names.

`signature` is a keel.export.mobile.MobileSignature.
"""


def kotlin(signature, signature_key: str, numbers_input: str) -> str:
    """One call of the model from an Android app (LiteRT's Interpreter.runSignature)."""
    lines = ['val interpreter = Interpreter(FileUtil.loadMappedFile(context, "model.tflite"))']
    if signature.columns:
        lines.append(f"val features = arrayOf(floatArrayOf(/* {', '.join(signature.columns)} */))")
    for name in signature.text_columns:
        lines.append(f"val {identifier(name)} = arrayOf(/* {name}: a String */)")
    for name, (height, width, channels) in signature.images.items():
        lines.append(
            f"val {identifier(name)} = ByteBuffer.allocateDirect({height * width * channels})  "
            f"// {height}x{width}x{channels} uint8 pixels, row by row"
        )
    names = signature.input_names
    if signature.task == "regression":
        lines.append("val output = FloatArray(1)  // the prediction, in the label's units")
    else:
        lines.append(
            f"val output = Array(1) {{ FloatArray({len(signature.label_vocabulary)}) }}  // label_vocabulary order"
        )
    lines.append(
        f"interpreter.runSignature(mapOf({', '.join(f'{chr(34)}{n}{chr(34)} to {identifier(n)}' for n in names)}), "
        f'mapOf("{signature.output}" to output), "{signature_key}")'
    )
    return "\n".join(lines)


def swift(signature, signature_key: str, numbers_input: str) -> str:
    """One call of the model from an iOS app (TensorFlowLiteSwift's SignatureRunner); text goes in as
    a LiteRT string tensor (docs/export.md has `stringTensor`)."""
    lines = [
        "let interpreter = try Interpreter(modelPath: modelPath)",
        f'let runner = try interpreter.signatureRunner(with: "{signature_key}")',
        "try runner.allocateTensors()",
    ]
    if signature.columns:
        lines.append(
            f"var features: [Float32] = [/* {', '.join(signature.columns)} */]\n"
            f'try runner.copy(Data(bytes: &features, count: features.count * 4), toInputNamed: "{numbers_input}")'
        )
    for name in signature.text_columns:
        lines.append(f'try runner.copy(stringTensor([{identifier(name)}]), toInputNamed: "{name}")')
    for name, (height, width, channels) in signature.images.items():
        lines.append(
            f"try runner.copy(Data({identifier(name)}Pixels /* {height * width * channels} UInt8, row by row */), "
            f'toInputNamed: "{name}")'
        )
    lines.append("try runner.invoke()")
    lines.append(f'let output = try runner.output(named: "{signature.output}")')
    return "\n".join(lines)


def identifier(name: str) -> str:
    """`name` as a Kotlin or Swift identifier."""
    return "".join(c if c.isalnum() else "_" for c in name)
