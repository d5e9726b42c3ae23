// Lint for the renderer's TypeScript (npm run lint): ESLint's and typescript-eslint's
// recommended rules; the generated schema types are left as json-schema-to-typescript
// writes them.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['lib/', 'labextension/', 'build-test/', 'node_modules/', 'src/schema.ts'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    rules: {
      '@typescript-eslint/no-non-null-assertion': 'off'
    }
  }
);
