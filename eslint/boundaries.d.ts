/** Types of eslint/boundaries.js: the folder boundary table and the ESLint rule that checks it. */
import type { ESLint, Rule } from "eslint";

/** Library folder (repo-relative) → the libraries it may import, each through its index.ts only. */
export declare const LIBRARIES: Readonly<Record<string, readonly string[]>>;
/** Top-level folders whose every file belongs to a library of the table. */
export declare const SOURCE_FOLDERS: readonly string[];
/** The libraries, each after all it may import; throws on a cycle. */
export declare function dependencyOrder(table: Readonly<Record<string, readonly string[]>>): string[];
export declare const boundariesRule: Rule.RuleModule;
declare const plugin: ESLint.Plugin;
export default plugin;
