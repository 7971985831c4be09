/**
 * The OpenAPI document the daemon generates (GET /v1/openapi.json) matches
 * the HTTP contract: each schema lists exactly the fields of its contract
 * type, with the same required, nullable and enumerated ones, and the error
 * shape lists every error code. The key lists below are checked against the
 * contract types by the compiler, so a field added to the contract and not
 * to the document fails here.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  ERROR_CODES,
  ROUTES,
  type ContainerHealth,
  type ContainerState,
  type DeployRequest,
  type DeployResponse,
  type DestroyResponse,
  type DetachedVolume,
  type ErrorBody,
  type HealthResponse,
  type PoolSummary,
  type StatusItem,
  type StatusResponse,
  type TlsSummary,
  type AcmeSummary,
  type UnknownContainer,
} from '../../../contract/api.js';
import { createTestApp, type TestApp } from '../testing/test-app.js';

type RequiredKeys<T> = { [K in keyof T]-?: object extends Pick<T, K> ? never : K }[keyof T];
type NullableKeys<T> = { [K in keyof T]-?: null extends T[K] ? K : never }[keyof T];
/** Compiles only when `items` names every member of U, each once at most. */
type Exhaustive<U, Items extends readonly U[]> = [Exclude<U, Items[number]>] extends [never] ? Items : { missing: Exclude<U, Items[number]> };
const every =
  <U>() =>
  <const Items extends readonly U[]>(...items: Items & Exhaustive<U, Items>): string[] =>
    items.map(String).sort();

/** What a schema must say about a contract type T. */
function shape<T>() {
  return <const A extends readonly (keyof T)[], const R extends readonly RequiredKeys<T>[], const N extends readonly NullableKeys<T>[]>(
    all: A & Exhaustive<keyof T, A>,
    required: R & Exhaustive<RequiredKeys<T>, R>,
    nullable: N & Exhaustive<NullableKeys<T>, N>,
  ) => ({ all: all.map(String).sort(), required: required.map(String).sort(), nullable: nullable.map(String).sort() });
}

const SHAPES: Record<string, { all: string[]; required: string[]; nullable: string[] }> = {
  DeployRequest: shape<DeployRequest>()(['name', 'size_gb', 'version', 'memory_mb', 'from_volume'], [], []),
  DeployResponse: shape<DeployResponse>()(
    ['name', 'host', 'port', 'db', 'user', 'password', 'database_url', 'created_at', 'postgres_version', 'memory_mb'],
    ['name', 'host', 'port', 'db', 'user', 'password', 'database_url', 'created_at', 'postgres_version', 'memory_mb'],
    [],
  ),
  StatusItem: shape<StatusItem>()(
    ['name', 'container_id', 'volume_name', 'host', 'host_port', 'db', 'user', 'created_at', 'postgres_version', 'size_gb', 'memory_mb', 'used_bytes', 'state', 'health', 'password', 'database_url', 'problem', 'backup'],
    ['name', 'container_id', 'volume_name', 'host', 'host_port', 'db', 'user', 'created_at', 'postgres_version', 'size_gb', 'memory_mb', 'used_bytes', 'state', 'health'],
    ['memory_mb', 'used_bytes'],
  ),
  DetachedVolume: shape<DetachedVolume>()(['volume_name', 'name', 'created_at'], ['volume_name', 'name', 'created_at'], ['created_at']),
  UnknownContainer: shape<UnknownContainer>()(
    ['container_id', 'name', 'container_name', 'state'],
    ['container_id', 'name', 'container_name', 'state'],
    [],
  ),
  PoolSummary: shape<PoolSummary>()(['postgres_version', 'target', 'ready', 'filling', 'problem'], ['postgres_version', 'target', 'ready', 'filling'], []),
  StatusResponse: shape<StatusResponse>()(
    ['items', 'detached_volumes', 'unknown_containers', 'pool', 'backups', 'tls'],
    ['items', 'detached_volumes', 'unknown_containers', 'pool', 'backups'],
    ['backups'],
  ),
  DestroyResponse: shape<DestroyResponse>()(['ok', 'backups_kept'], ['ok', 'backups_kept'], []),
  HealthResponse: shape<HealthResponse>()(['status', 'docker', 'version', 'tls', 'problems'], ['status', 'docker', 'version', 'tls', 'problems'], []),
  TlsSummary: shape<TlsSummary>()(['source', 'api', 'ca_fingerprint', 'api_key_fingerprint', 'acme'], ['source', 'api', 'ca_fingerprint'], []),
  AcmeSummary: shape<AcmeSummary>()(
    ['directory', 'identifier', 'profile', 'state', 'not_after', 'renew_at', 'last_error', 'last_error_at', 'next_attempt_at'],
    ['directory', 'identifier', 'profile', 'state', 'not_after', 'renew_at', 'last_error', 'last_error_at', 'next_attempt_at'],
    ['profile', 'not_after', 'renew_at', 'last_error', 'last_error_at', 'next_attempt_at'],
  ),
  ErrorBody: shape<ErrorBody>()(['error'], ['error'], []),
  ErrorDetail: shape<ErrorBody['error']>()(['code', 'message'], ['code', 'message'], []),
};

interface Schema {
  type?: string;
  properties?: Record<string, Schema>;
  required?: string[];
  nullable?: boolean;
  enum?: unknown[];
  additionalProperties?: boolean;
  $ref?: string;
  items?: Schema;
}

describe('OpenAPI document (GET /v1/openapi.json)', () => {
  let t: TestApp;
  let doc: { openapi: string; paths: Record<string, Record<string, any>>; components: { schemas: Record<string, Schema> } };
  before(async () => {
    t = await createTestApp();
    const res = await t.request('GET', '/v1/openapi.json', { token: null });
    assert.equal(res.status, 200);
    doc = res.body;
  });
  after(() => t.close());

  it('is OpenAPI 3', () => {
    assert.match(doc.openapi, /^3\./);
  });

  for (const [name, expected] of Object.entries(SHAPES)) {
    it(`lists exactly the fields of the contract's ${name}, with its required and nullable ones, and no others`, () => {
      const schema = doc.components.schemas[name];
      assert.ok(schema, `no schema ${name}`);
      assert.deepEqual(Object.keys(schema.properties ?? {}).sort(), expected.all);
      assert.deepEqual([...(schema.required ?? [])].sort(), expected.required);
      const nullable = Object.entries(schema.properties ?? {}).filter(([, p]) => p.nullable).map(([k]) => k);
      assert.deepEqual(nullable.sort(), expected.nullable);
      assert.equal(schema.additionalProperties, false, 'unknown fields are not part of the contract');
    });
  }

  it('lists every error code, and only those', () => {
    assert.deepEqual([...(doc.components.schemas.ErrorDetail.properties!.code.enum as string[])].sort(), [...ERROR_CODES].sort());
  });

  it('lists the container states and health values of the contract', () => {
    assert.deepEqual(doc.components.schemas.UnknownContainer.properties!.state.enum, doc.components.schemas.StatusItem.properties!.state.enum);
    const item = doc.components.schemas.StatusItem.properties!;
    assert.deepEqual(
      [...(item.state.enum as string[])].sort(),
      every<ContainerState>()('running', 'stopped', 'restarting', 'missing', 'unknown', 'creating', 'destroying'),
    );
    assert.deepEqual([...(item.health.enum as string[])].sort(), every<ContainerHealth>()('healthy', 'unhealthy', 'starting', 'none'));
  });

  it('offers only the configured Postgres versions', () => {
    assert.deepEqual(doc.components.schemas.DeployRequest.properties!.version.enum, t.config.versions);
  });

  it('documents the contract routes, each with its query parameters, success body and the error shape', () => {
    const templated = (route: string | ((name: string) => string)) => (typeof route === 'function' ? route('NAME').replace('NAME', '{name}') : route);
    const routes = new Set<string>(Object.values(ROUTES).map(templated));
    for (const path of Object.keys(doc.paths)) assert.ok(routes.has(path), `${path} is not a contract route`);
    const op = (path: string, method: string) => doc.paths[path]?.[method];
    const ref = (response: any) => response?.content?.['application/json']?.schema?.$ref?.replace('#/components/schemas/', '');

    const deploy = op(ROUTES.deploy, 'post');
    assert.equal(ref(deploy.responses['201']), 'DeployResponse');
    assert.equal(deploy.requestBody.content['application/json'].schema.$ref, '#/components/schemas/DeployRequest');
    assert.equal(deploy.requestBody.required, false, 'a deploy without a body is a deploy with defaults');
    assert.deepEqual(Object.keys(deploy.requestBody.content), ['application/json']);

    const status = op(ROUTES.status, 'get');
    assert.equal(ref(status.responses['200']), 'StatusResponse');
    assert.deepEqual(status.parameters.map((p: any) => [p.in, p.name, p.schema.enum]), [['query', 'show_secrets', ['true', 'false']]]);

    const destroy = op(templated(ROUTES.database), 'delete');
    assert.equal(ref(destroy.responses['200']), 'DestroyResponse');
    assert.deepEqual(
      destroy.parameters.map((p: any) => [p.in, p.name]).sort(),
      [['path', 'name'], ['query', 'delete_backups'], ['query', 'keep_data']],
    );

    for (const route of [ROUTES.upgradeFinish, ROUTES.upgradeRollback]) {
      const step = op(templated(route), 'post');
      assert.deepEqual(
        step.parameters.map((p: any) => [p.in, p.name, p.schema.enum]).sort(),
        [['path', 'name', undefined], ['query', 'delete_backups', ['true', 'false']]],
      );
    }

    assert.equal(ref(op(templated(ROUTES.backups), 'post').responses['201']), 'BackupItem');
    assert.equal(ref(op(templated(ROUTES.backups), 'get').responses['200']), 'BackupsResponse');
    assert.equal(ref(op(ROUTES.destroyedBackups, 'get').responses['200']), 'DestroyedBackupsResponse');
    const restore = op(templated(ROUTES.restore), 'post');
    assert.equal(ref(restore.responses['201']), 'RestoreResponse');
    const restoreBody = restore.requestBody.content['application/json'].schema;
    assert.deepEqual(restoreBody.allOf, [{ $ref: '#/components/schemas/RestoreRequest' }]);
    assert.deepEqual(restoreBody.not, { required: ['time', 'backup'] }, 'time and backup exclude each other');

    const ca = op(ROUTES.ca, 'get');
    assert.deepEqual(Object.keys(ca.responses['200'].content), ['application/x-pem-file']);
    assert.deepEqual(ca.security, [{}], 'the CA needs no token');
    const apiCertificate = op(ROUTES.apiCertificate, 'get');
    assert.deepEqual(Object.keys(apiCertificate.responses['200'].content), ['application/x-pem-file']);
    assert.deepEqual(apiCertificate.security, [{}], "the API's certificate needs no token");

    const health = op(ROUTES.health, 'get');
    assert.equal(ref(health.responses['200']), 'HealthResponse');
    assert.equal(ref(health.responses['503']), 'HealthResponse');
    assert.deepEqual(health.security, [{}], 'health needs no token');

    for (const [path, operations] of Object.entries(doc.paths)) {
      for (const [method, operation] of Object.entries(operations)) {
        for (const [status, response] of Object.entries(operation.responses as Record<string, unknown>)) {
          if (status.startsWith('2') || (path === ROUTES.health && status === '503')) continue;
          assert.equal(ref(response), 'ErrorBody', `${method} ${path} ${status}`);
        }
        assert.ok(operation.responses.default, `${method} ${path} documents other errors`);
      }
    }
  });
});
