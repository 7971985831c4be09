/**
 * docs/reference/api.md: every route of the OpenAPI document the daemon
 * serves at GET /v1/openapi.json, with its parameters, request body and
 * responses, and every schema with its fields.
 *
 * The document comes from the real Nest/Fastify app with Docker and Postgres
 * replaced by fakes (daemon/src/testing/test-app.ts), configured with the
 * daemon's defaults. buildOpenApiDocument() fills three values from where it
 * runs: the highest `memory_mb` (this machine's memory), the highest `cpus`
 * (its CPU count) and the Postgres versions (the daemon's configuration).
 * normaliseDocument() writes those as what they depend on, so the file is
 * the same on every machine.
 *
 * Routes are sorted by path, then method; schemas by name; the fields of a
 * schema keep the order of the document (their order in the DTO). A schema
 * keyword this renderer does not know stops it, rather than being left out.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { CPUS_MAX, MEMORY_MB_MAX } from '../../contract/api.js';
import { loadConfig } from '../../daemon/src/common/config.js';
import { createTestApp, TEST_TOKEN } from '../../daemon/src/testing/test-app.js';
import { cell, code, githubSlug } from './markdown.js';

/** What a bound or a list of values is when it depends on the server rather than on the code. */
type ServerValue = { server: string };

export interface Schema {
  type?: string;
  format?: string;
  $ref?: string;
  allOf?: Schema[];
  items?: Schema;
  properties?: Record<string, Schema>;
  required?: string[];
  nullable?: boolean;
  enum?: unknown[] | ServerValue;
  minimum?: number | ServerValue;
  maximum?: number | ServerValue;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  default?: unknown;
  example?: unknown;
  description?: string;
  additionalProperties?: boolean;
  minProperties?: number;
  not?: { required?: string[] };
}

interface Content {
  schema: Schema;
}

interface Parameter {
  name: string;
  in: string;
  required?: boolean;
  description?: string;
  schema: Schema;
}

interface Operation {
  summary?: string;
  description?: string;
  parameters?: Parameter[];
  requestBody?: { required?: boolean; description?: string; content: Record<string, Content> };
  responses: Record<string, { description?: string; content?: Record<string, Content> }>;
  security?: Array<Record<string, string[]>>;
}

export interface OpenApiDocument {
  openapi: string;
  info: { title: string; description?: string };
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, Schema>; securitySchemes?: Record<string, { description?: string }> };
}

/** The document a daemon with the default configuration serves, and the Postgres versions of that configuration. */
export async function openApiDocument(): Promise<{ document: OpenApiDocument; versions: number[] }> {
  const defaults = loadConfig({ PGDB_TOKEN: TEST_TOKEN });
  const dataDir = mkdtempSync(join(tmpdir(), 'pgdb-docs-'));
  try {
    const app = await createTestApp({
      dataDir,
      env: { PGDB_POSTGRES_VERSIONS: defaults.versions.join(','), PGDB_DEFAULT_VERSION: String(defaults.defaultVersion) },
    });
    try {
      const response = await app.request('GET', '/v1/openapi.json', { token: null });
      if (response.status !== 200) throw new Error(`GET /v1/openapi.json answered ${response.status}`);
      return { document: response.body as OpenApiDocument, versions: defaults.versions };
    } finally {
      await app.close();
    }
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** The values buildOpenApiDocument() takes from this machine, computed as it does. */
export function machineValues(): { memoryMb: number; cpus: number } {
  return { memoryMb: Math.min(MEMORY_MB_MAX, Math.floor(totalmem() / (1024 * 1024))), cpus: Math.min(CPUS_MAX, availableParallelism()) };
}

/**
 * The document with the values of this machine and configuration written as
 * what they depend on: a `memory_mb` or `cpus` maximum equal to this
 * machine's, and a `version` list equal to the configured versions.
 */
export function normaliseDocument(
  document: OpenApiDocument,
  versions: number[],
  machine: { memoryMb: number; cpus: number } = machineValues(),
): OpenApiDocument {
  const copy = structuredClone(document);
  for (const schema of Object.values(copy.components.schemas)) {
    for (const [name, property] of Object.entries(schema.properties ?? {})) {
      if (name === 'memory_mb' && property.maximum === machine.memoryMb) {
        property.maximum = { server: `the server's memory in MiB (at most ${MEMORY_MB_MAX})` };
      }
      if (name === 'cpus' && property.maximum === machine.cpus) {
        property.maximum = { server: `the server's CPU count (at most ${CPUS_MAX})` };
      }
      if (name === 'version' && Array.isArray(property.enum) && JSON.stringify(property.enum) === JSON.stringify(versions)) {
        property.enum = { server: `a major of the daemon's \`PGDB_POSTGRES_VERSIONS\` (by default ${versions.join(', ')})` };
      }
    }
  }
  return copy;
}

const KNOWN = new Set<keyof Schema>([
  'type',
  'format',
  '$ref',
  'allOf',
  'items',
  'properties',
  'required',
  'nullable',
  'enum',
  'minimum',
  'maximum',
  'minLength',
  'maxLength',
  'pattern',
  'default',
  'example',
  'description',
  'additionalProperties',
  'minProperties',
  'not',
]);

function checkKeywords(schema: Schema, where: string): void {
  for (const key of Object.keys(schema)) {
    if (!KNOWN.has(key as keyof Schema)) throw new Error(`${where}: the API reference cannot render the schema keyword "${key}"`);
  }
}

const METHODS = ['get', 'put', 'post', 'patch', 'delete', 'head', 'options'];
const refName = (ref: string) => ref.replace('#/components/schemas/', '');
const schemaLink = (name: string) => `[${name}](#${githubSlug(name)})`;
const routeTitle = (method: string, path: string) => `${method.toUpperCase()} ${path}`;
const bound = (value: number | ServerValue) => (typeof value === 'number' ? String(value) : value.server);
const literal = (value: unknown) => code(JSON.stringify(value));

/** A field's type: a link for a schema of the document, `array of ...`, `or null` when it may be null. */
export function typeOf(schema: Schema, where: string): string {
  checkKeywords(schema, where);
  let type: string;
  if (schema.$ref) type = schemaLink(refName(schema.$ref));
  else if (schema.allOf) {
    if (schema.allOf.length !== 1 || !schema.allOf[0].$ref) throw new Error(`${where}: allOf other than one schema`);
    type = schemaLink(refName(schema.allOf[0].$ref));
  } else if (schema.type === 'array') {
    if (!schema.items) throw new Error(`${where}: an array without items`);
    type = `array of ${typeOf(schema.items, `${where}[]`)}`;
  } else if (schema.properties) {
    throw new Error(`${where}: an object schema inside another one`);
  } else if (schema.type) {
    type = schema.format ? `${schema.type} (${schema.format})` : schema.type;
  } else {
    throw new Error(`${where}: no type`);
  }
  return schema.nullable ? `${type} or null` : type;
}

/** What a value may be, beyond its type. */
export function constraintsOf(schema: Schema): string {
  const parts: string[] = [];
  if (schema.enum !== undefined) {
    parts.push(Array.isArray(schema.enum) ? `one of ${schema.enum.map(literal).join(', ')}` : schema.enum.server);
  }
  if (schema.minimum !== undefined && schema.maximum !== undefined) parts.push(`${bound(schema.minimum)} to ${bound(schema.maximum)}`);
  else if (schema.minimum !== undefined) parts.push(`at least ${bound(schema.minimum)}`);
  else if (schema.maximum !== undefined) parts.push(`at most ${bound(schema.maximum)}`);
  if (schema.minLength !== undefined && schema.maxLength !== undefined) parts.push(`${schema.minLength} to ${schema.maxLength} characters`);
  else if (schema.minLength !== undefined) parts.push(`at least ${schema.minLength} characters`);
  else if (schema.maxLength !== undefined) parts.push(`at most ${schema.maxLength} characters`);
  if (schema.pattern !== undefined) parts.push(`pattern ${code(schema.pattern)}`);
  if (schema.default !== undefined) parts.push(`default ${literal(schema.default)}`);
  if (schema.example !== undefined) parts.push(`e.g. ${literal(schema.example)}`);
  return parts.join('; ');
}

/** The schema a body or response names: its own, or the one its `$ref` or single `allOf` points at. */
function resolve(document: OpenApiDocument, schema: Schema): { name?: string; schema: Schema } {
  const ref = schema.$ref ?? (schema.allOf?.length === 1 ? schema.allOf[0].$ref : undefined);
  if (!ref) return { schema };
  const name = refName(ref);
  const target = document.components.schemas[name];
  if (!target) throw new Error(`no schema ${name}`);
  return { name, schema: target };
}

/** A table of an object schema's fields, and the notes on the object as a whole. */
function fieldsTable(schema: Schema, where: string): string[] {
  checkKeywords(schema, where);
  const required = new Set(schema.required ?? []);
  const rows = Object.entries(schema.properties ?? {}).map(
    ([name, property]) =>
      `| ${code(name)} | ${cell(typeOf(property, `${where}.${name}`))} | ${required.has(name) ? 'yes' : 'no'} | ${cell(constraintsOf(property))} | ${cell(property.description ?? '')} |`,
  );
  const out = rows.length > 0 ? ['| Field | Type | Required | Constraints | Description |', '| --- | --- | --- | --- | --- |', ...rows] : ['No fields.'];
  const notes: string[] = [];
  if (schema.minProperties !== undefined) notes.push(`At least ${schema.minProperties} of these fields.`);
  if (schema.additionalProperties !== false) notes.push('Other fields may appear.');
  if (notes.length > 0) out.push('', notes.join(' '));
  return out;
}

/** Notes a body's own schema adds to the one it refers to (`not: { required: [...] }`). */
function bodyNotes(schema: Schema, where: string): string[] {
  checkKeywords(schema, where);
  const notes: string[] = [];
  if (schema.not) {
    if (!schema.not.required || Object.keys(schema.not).length !== 1) throw new Error(`${where}: a "not" other than required fields`);
    notes.push(`${schema.not.required.map(code).join(' and ')} may not ${schema.not.required.length === 2 ? 'both' : 'all'} be given.`);
  }
  return notes;
}

function renderOperation(document: OpenApiDocument, path: string, method: string, operation: Operation): string[] {
  const where = routeTitle(method, path);
  const out: string[] = ['', `## ${code(where)}`, ''];
  if (operation.summary) out.push(`${operation.summary}.`.replace(/\.\.$/, '.'), '');
  if (operation.description) out.push(operation.description, '');
  const security = operation.security ?? [];
  const bearer = security.some((requirement) => Object.keys(requirement).includes('bearer'));
  out.push(bearer ? 'Token: required (`Authorization: Bearer <PGDB_TOKEN>`).' : 'Token: none.');

  const parameters = operation.parameters ?? [];
  if (parameters.length > 0) {
    out.push('', 'Parameters:', '', '| Name | In | Type | Required | Constraints | Description |', '| --- | --- | --- | --- | --- | --- |');
    for (const parameter of parameters) {
      const at = `${where} ${parameter.in} ${parameter.name}`;
      out.push(
        `| ${code(parameter.name)} | ${parameter.in} | ${cell(typeOf(parameter.schema, at))} | ${parameter.required ? 'yes' : 'no'} | ${cell(constraintsOf(parameter.schema))} | ${cell(parameter.description ?? '')} |`,
      );
    }
  }

  const body = operation.requestBody;
  if (body) {
    for (const [type, content] of Object.entries(body.content)) {
      const { name, schema } = resolve(document, content.schema);
      const heading = `Request body (${code(type)}, ${body.required ? 'required' : 'optional'})${name ? `, ${schemaLink(name)}` : ''}:`;
      out.push('', body.description ? `${heading} ${body.description}` : heading, '');
      if (schema.properties) out.push(...fieldsTable(schema, `${where} body`));
      else out.push(`The body is ${typeOf(schema, `${where} body`)}.`);
      const notes = bodyNotes(content.schema, `${where} body`);
      if (notes.length > 0) out.push('', ...notes);
    }
  }

  const statuses = Object.keys(operation.responses).sort((a, b) => (a === 'default' ? 1 : b === 'default' ? -1 : Number(a) - Number(b)));
  out.push('', 'Responses:', '', '| Status | Content | Body | Description |', '| --- | --- | --- | --- |');
  const bodies: Array<{ statuses: string[]; name: string; schema: Schema }> = [];
  for (const status of statuses) {
    const response = operation.responses[status];
    const contents = Object.entries(response.content ?? {});
    if (contents.length === 0) contents.push(['', { schema: {} }]);
    for (const [type, content] of contents) {
      const at = `${where} ${status}`;
      const bodyType = type ? typeOf(content.schema, at) : '';
      out.push(`| ${status} | ${type ? code(type) : ''} | ${cell(bodyType)} | ${cell(response.description ?? '')} |`);
      const { name, schema } = type ? resolve(document, content.schema) : { name: undefined, schema: {} };
      const seen = bodies.find((body) => body.name === name);
      if (seen) seen.statuses.push(status);
      else if (name && name !== 'ErrorBody') bodies.push({ statuses: [status], name, schema });
    }
  }
  for (const { statuses, name, schema } of bodies) {
    out.push('', `The ${statuses.join(' and ')} body, ${schemaLink(name)}:`, '', ...fieldsTable(schema, name));
  }
  return out;
}

/** docs/reference/api.md from a normalised document. */
export function renderApiReference(document: OpenApiDocument): string {
  const routes = Object.entries(document.paths)
    .flatMap(([path, operations]) =>
      Object.entries(operations).map(([method, operation]) => {
        if (!METHODS.includes(method)) throw new Error(`${path}: unknown method ${method}`);
        return { path, method, operation };
      }),
    )
    .sort((a, b) => (a.path === b.path ? METHODS.indexOf(a.method) - METHODS.indexOf(b.method) : a.path < b.path ? -1 : 1));
  const bearer = document.components.securitySchemes?.bearer?.description;
  const out: string[] = [
    '# HTTP API reference',
    '',
    "<!-- Generated by `npm run docs` (tools/docs/api-reference.ts) from the daemon's OpenAPI document. Do not edit: tools/docs/docs.spec.ts fails when this file is out of date. -->",
    '',
    `Every route of \`${document.info.title}\`, as the OpenAPI ${document.openapi} document it serves at`,
    '`GET /v1/openapi.json` describes it (generated from the daemon\'s controllers',
    'and DTOs). [HTTP API](../api.md) says what the routes do beyond their shapes.',
    '',
    ...(document.info.description ? [`The document\'s own description: ${document.info.description}`, ''] : []),
    `- Routes that need a token take it as \`Authorization: Bearer <PGDB_TOKEN>\`${bearer ? `: ${bearer[0].toLowerCase()}${bearer.slice(1).replace(/\.$/, '')}` : ''}.`,
    '- Every error answers with an [ErrorBody](#errorbody); its `code` is one of',
    '  those [ErrorDetail](#errordetail) lists.',
    '- Every object is closed (no other fields) unless its table says otherwise.',
    '- Values that depend on the server are named for what they depend on: its',
    '  memory, its CPU count, its configured Postgres versions.',
    '',
    '| Route | Token | What it does |',
    '| --- | --- | --- |',
  ];
  for (const { path, method, operation } of routes) {
    const title = routeTitle(method, path);
    const token = (operation.security ?? []).some((requirement) => 'bearer' in requirement) ? 'yes' : 'no';
    out.push(`| [${code(title)}](#${githubSlug(title)}) | ${token} | ${cell(operation.summary ?? '')} |`);
  }
  for (const { path, method, operation } of routes) out.push(...renderOperation(document, path, method, operation));
  out.push('', '## Schemas');
  for (const name of Object.keys(document.components.schemas).sort()) {
    const schema = document.components.schemas[name];
    out.push('', `### ${name}`, '');
    if (schema.description) out.push(schema.description, '');
    out.push(...fieldsTable(schema, name));
  }
  return `${out.join('\n')}\n`;
}
