// First in a module with an f16 operand.
enable f16;
