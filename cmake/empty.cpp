// Placeholder so a module library exists before its first source file.
