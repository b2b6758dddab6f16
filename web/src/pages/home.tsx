import { Async, Badge, Card, Empty, fmtDate, Page } from '../components/ui';
import { useApi, useTitle } from '../hooks';
import { Link } from '../router';
import { useSession } from '../session';

interface ModelList { models: { name: string; versions: number; latest: number; production?: number | null; task?: string; family?: string }[] }
interface JobList { jobs: { id: string; name: string; status: string; progress?: number; created: string }[] }
interface DatasetList { datasets: { id: string; name: string; rows: number; created: string }[] }

/** The five newest (the API lists oldest first). */
function newest<T extends { created: string }>(items: T[]): T[] {
  return [...items].sort((a, b) => (a.created < b.created ? 1 : a.created > b.created ? -1 : 0)).slice(0, 5);
}

/** The overview: the newest of each kind, and where to start. */
export function HomePage() {
  const session = useSession();
  return session.can('read') ? <Overview /> : <PredictHome />;
}

/**
 * A key that may only predict (a device's, an integration's) sees the models it can predict
 * with, each linked to its production (else newest) version's prediction form.
 */
function PredictHome() {
  useTitle('Predict');
  const session = useSession();
  const models = useApi<ModelList>('/v1/models');
  return (
    <Page title={`Predict · project ${session.info!.project.name}`} subtitle="This key may predict; reading datasets, jobs and evaluations needs a key with the read scope.">
      <Card title="Models">
        <Async res={models} what="models">
          {(d) =>
            d.models.length ? (
              <ul class="plain">
                {d.models.map((m) => (
                  <li key={m.name}>
                    <Link href={`/models/${encodeURIComponent(m.name)}/versions/${m.production ?? m.latest}/predict`}>{m.name}</Link>{' '}
                    <span class="muted">
                      version {m.production ?? m.latest}
                      {m.production ? ' (production)' : ' (newest)'}
                      {m.task ? ` · ${m.task}` : ''}
                    </span>
                  </li>
                ))}
              </ul>
            ) : (
              <Empty>No models in this project yet.</Empty>
            )
          }
        </Async>
      </Card>
    </Page>
  );
}

function Overview() {
  useTitle('Overview');
  const session = useSession();
  const models = useApi<ModelList>('/v1/models', 10_000);
  const jobs = useApi<JobList>('/v1/jobs', 5_000);
  const datasets = useApi<DatasetList>('/v1/datasets', 10_000);
  return (
    <Page title={`Project ${session.info!.project.name}`} subtitle="Datasets, training jobs and models of this project.">
      <div class="grid3">
        <Card title={<Link href="/datasets">Datasets</Link>}>
          <Async res={datasets} what="datasets">
            {(d) =>
              d.datasets.length ? (
                <ul class="plain">
                  {newest(d.datasets).map((x) => (
                    <li key={x.id}>
                      <Link href={`/datasets/${encodeURIComponent(x.id)}`}>{x.name}</Link> <span class="muted">{x.rows} rows</span>
                    </li>
                  ))}
                </ul>
              ) : (
                <Empty>No datasets yet. {session.can('train') ? <Link href="/datasets">Upload one</Link> : null}</Empty>
              )
            }
          </Async>
        </Card>
        <Card title={<Link href="/jobs">Jobs</Link>}>
          <Async res={jobs} what="jobs">
            {(d) =>
              d.jobs.length ? (
                <ul class="plain">
                  {newest(d.jobs).map((j) => (
                    <li key={j.id}>
                      <Link href={`/jobs/${encodeURIComponent(j.id)}`}>{j.name}</Link> <Badge kind={j.status}>{j.status}</Badge>{' '}
                      <span class="muted">{fmtDate(j.created)}</span>
                    </li>
                  ))}
                </ul>
              ) : (
                <Empty>No jobs yet. {session.can('train') ? <Link href="/train">Train a model</Link> : null}</Empty>
              )
            }
          </Async>
        </Card>
        <Card title={<Link href="/models">Models</Link>}>
          <Async res={models} what="models">
            {(d) =>
              d.models.length ? (
                <ul class="plain">
                  {d.models.slice(0, 5).map((m) => (
                    <li key={m.name}>
                      <Link href={`/models/${encodeURIComponent(m.name)}`}>{m.name}</Link> <span class="muted">{m.versions} version{m.versions === 1 ? '' : 's'}</span>
                    </li>
                  ))}
                  {d.models.length > 5 ? (
                    <li>
                      <Link href="/models">All {d.models.length} models</Link>
                    </li>
                  ) : null}
                </ul>
              ) : (
                <Empty>No models yet.</Empty>
              )
            }
          </Async>
        </Card>
      </div>
    </Page>
  );
}
