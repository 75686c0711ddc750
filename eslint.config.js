import js from "@eslint/js";
import tseslint from "typescript-eslint";
import airlock, { SOURCE_FOLDERS } from "./eslint/boundaries.js";

export default tseslint.config(
  { ignores: ["dist/**", "node_modules/**", "test/fixtures/**", ".bench/**"] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "@typescript-eslint/consistent-type-imports": "error",
    },
  },
  {
    files: SOURCE_FOLDERS.map((folder) => `${folder}/**`),
    plugins: { airlock },
    rules: { "airlock/boundaries": "error" },
  },
  {
    files: ["**/*.mjs", "**/*.js"],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: {
      ...tseslint.configs.disableTypeChecked.languageOptions,
      globals: { process: "readonly", console: "readonly", URL: "readonly", Buffer: "readonly" },
    },
  },
);
