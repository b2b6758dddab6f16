import { Page } from '../components/ui';
// Built in the next commits.
export function DatasetsPage(_props: Record<string, string>) { return <Page title="DatasetsPage"><p>Not built yet.</p></Page>; }
export function DatasetPage(_props: Record<string, string>) { return <Page title="DatasetPage"><p>Not built yet.</p></Page>; }
